/*
 * xa-protocol.pml -- a Promela model of the mikro-orm-xa-cache protocol (docs/protocol.md), for SPIN.
 * docs/model.md says what it covers, what it abstracts away and what the checks found.
 *
 * What is modelled:
 *   - ONE item key in memcached (a row) or, with -DREGION, one region key (r:<table>, holding the table's
 *     generation) plus one query-result key whose values are valid only under the generation they were read
 *     under;
 *   - PostgreSQL as the table's committed version (an integer bumped by every COMMIT) and the durable log
 *     row of each committed transaction (xa_cache_log, written inside the transaction);
 *   - NW = 2 writers, NR = 2 readers, the recovery sweeper, and memcached itself, which may evict any entry
 *     or expire a lock or a lease at any instant;
 *   - every edge of lib/protocol/key-transitions.ts (prepareTransition, promoteTransition,
 *     releaseTransition; item and region roles), the reads, leases and fills of cache-reader.ts, the
 *     compare-and-swap loop of cas-batch.ts and the sweeper of recovery-sweeper.ts.
 *
 * Each memcached command is ONE atomic step (d_step), because the memcached server executes each command
 * atomically; other processes may act between two commands.
 *
 * Properties (assertions; a violation is an assertion failure with a trail):
 *   G1        a value served from the cache was committed: it is <= the database's version at that instant;
 *   G2/G3/G6  a value served from the cache is not older than `settled`, the newest version whose protection
 *             was in force when the read looked at the cache (see `settle` for when that is);
 *   G11       the above hold while memcached evicts anything at any time (the Memcached process);
 *   G12       at the end: no log row, no lease, no lock of a writer that did not crash.
 *
 * Mutations (bugs the model must catch; spec/model/check.sh checks that each one is caught):
 *   -DNO_LEASE            a reader fills with a plain `set` instead of `cas` against its lease's token
 *   -DNO_CAS_PROMOTE      promote writes its value with a plain `set`, even when its lock is gone or shared
 *   -DNO_LOCK             prepare does nothing: no lock is taken before COMMIT
 *   -DNO_CONCURRENT_FLAG  the last holder of a lock that was ever shared still writes its value
 *   -DNO_REGION_LOCK      (with -DREGION) prepare does not lock the region key
 *   -DWT_TAG_AT_PROMOTE   (with -DWRITE_THROUGH) the written-through value is tagged with the region generation
 *                         read at promote, after COMMIT, instead of before it
 * Other switches:
 *   -DREGION              check the region key and a cached query result instead of the item key
 *   -DWRITE_THROUGH       (with -DREGION) writer 0 writes the row through instead of the table: it locks the
 *                         value key (QRES, here a row validated against its table's row region), reads the
 *                         region's generation before its COMMIT and promotes VALUE(its version, that
 *                         generation); writer 1 stays a region-wide writer (a TRUNCATE, a 300-row UPDATE)
 *                         that locks only the region key
 *   -DFINE_GRAIN          split every step into its separate round trips (see "Granularity" below)
 *   -DNO_TTL_ASSUMPTION   also expect protection for a commit whose lock memcached dropped before COMMIT;
 *                         SPIN then shows the documented known limit (docs/protocol.md "Known limits")
 *   -DNO_EVICT            memcached never evicts or expires anything;  -DNO_CRASH  writers never crash
 *   -DNREADS=n            reads per reader (default 1)
 *
 * Granularity.  By default a key transition (read the key, decide with key-transitions.ts, write with
 * add/cas/delete-cas, retry on a lost race) is one atomic step.  That is exact, not an approximation, for
 * the CAS-guarded protocol: a write that lost its race changed nothing and is simply retried on a fresh
 * read, so every run of the loop has the effect of one read-decide-write at the instant of its successful
 * write (cas-batch.ts: "as if the transition had been applied atomically").  Likewise a reader's `get`,
 * lease `add` and database read are one step: the add succeeds only on an absent key, whatever the get
 * saw, and reading the database as EARLY as possible (at the lease) is the worst case for staleness --
 * every other timing serves a version at least as new, and every property here is "not older than".
 * -DFINE_GRAIN keeps every round trip separate (get, then cas; lease, then database, then fill) to check
 * exactly that claim; it is slower but still exhaustive.
 */

#define NW 2                 /* writers */
#define NR 2                 /* readers */
#ifndef NREADS
#define NREADS 1             /* reads per reader */
#endif

/* ------------------------------------------------------------------------------------------------------
 * memcached entries: the library's envelope kinds, reduced to what matters for the protocol.
 *   EMPTY  absent: never written, deleted, evicted or expired
 *   VALUE  a cached value: the committed version it holds (a query result also: the generation it was
 *          read under)
 *   LOCK   holders (bitset of writers), `concurrent` (ever held by more than one transaction) and, for a
 *          region lock, the prior generation (0 = none)
 *   LEASE  a reader is filling the key (the token is the reader's number; the CAS token is what counts)
 *   GEN    region key only: the current generation, a number never reused (models a random UUID, I4)
 * ------------------------------------------------------------------------------------------------------ */
#define EMPTY 0
#define VALUE 1
#define LOCK  2
#define LEASE 3
#define GEN   4

/* One memcached item.  Fields that do not apply to the kind stay 0, so equal entries are equal states. */
typedef Cell {
  byte kind;
  byte val;      /* VALUE: version; LEASE: reader+1; GEN: generation */
  byte gen;      /* VALUE of a query result: its generation; LOCK of a region: prior generation */
  byte holders;  /* LOCK: bitset of writers */
  bool conc;     /* LOCK: concurrent */
}

/* The keys.  The default configuration checks the item key: writers change the row, readers read it.
 * -DREGION checks the region key instead: writers write the table (touchRegions), readers run a query
 * whose result is cached under QRES with the generation it was read under.  Each configuration follows
 * every transition of its keys; a writer's item key and region key do not interact (every key goes
 * through prepare before COMMIT and promote after it on its own, and a crash or delay between two keys is
 * a schedule of the one-key model), so the two configurations together cover a writer that does both. */
#define ITEM 0   /* the row's key */
#define QRES 1   /* a cached query result over the table (REGION only) */
#define RKEY 2   /* the table's region key r:<table> (REGION only) */
#ifdef REGION
#define NKEYS 3
#ifdef WRITE_THROUGH
#define WK(w) ((w) == 0 -> QRES : RKEY)   /* writer 0 writes the row through, writer 1 the whole table */
#else
#define WK(w) RKEY  /* the key writers lock */
#endif
#else
#define NKEYS 1
#define WK(w) ITEM
#endif

Cell cell[NKEYS];

/* CAS.  memcached gives every stored item a CAS unique from a counter bumped on every change; `cas` and
 * `delete` with a token succeed only if the item still carries that unique, i.e. iff nothing changed the
 * key since the token was obtained (an eviction included: a re-added key gets a new unique; a restarted
 * server starts over, which the library detects).  The model keeps exactly that information: bit p of
 * valid[key] says "process p holds a token for this key that still matches".  A get by p sets bit p, a
 * successful add/cas by p leaves only bit p (p gets the new token), every other change clears all bits.
 * (A literal counter is equivalent but makes otherwise equal states differ by its value: the first version
 * of this model used one and did not fit in 4 GB.)  Process slots: writers 0..NW-1, readers NW..NW+NR-1,
 * the sweeper NW+NR. */
byte valid[NKEYS];
#define ME (1 << self)

byte nextgen = 1;     /* the next fresh region generation (never reused) */

/* ------------------------------------------------------------------------------------------------------
 * PostgreSQL
 * ------------------------------------------------------------------------------------------------------ */
byte dbv;             /* the committed version of the table; each COMMIT bumps it (row and query both) */
bool logrow[NW];      /* the log row of writer w: present from its COMMIT until the sweeper deletes it */

/* ------------------------------------------------------------------------------------------------------
 * Ghost state: not part of the protocol, only read by the properties.
 * ------------------------------------------------------------------------------------------------------ */
byte committedv[NW];  /* the version writer w committed (0: has not committed) */
bool lost[NW];        /* a lock of w was evicted or expired BEFORE its COMMIT (the documented known limit) */
byte settled;         /* the floor: no read that looks at the cache from now on may serve an older version */
byte finished;        /* writers and readers that have ended (crashed writers included) */
byte crashedmask;     /* writers that crashed */

/* The floor is raised:
 *   - at COMMIT, if the writer's locks were in place from its prepare to its COMMIT.  From then on each key
 *     it changed is locked (readers go to the database and may not fill), or was emptied after the COMMIT
 *     (so every later lease, and the database read behind it, comes after the COMMIT), or holds its own
 *     value.  This is the strong form of G3 ("a reader that read the database before a commit can never
 *     store its result where a reader after that commit would get it") and it implies G6: whenever the
 *     writer then crashes, nothing stale is readable, before or after its locks expire or are swept;
 *   - when promote returns (G2: "once a writer's commit has returned"); this alone covers a writer whose lock
 *     memcached dropped before its COMMIT -- such a writer is not protected between COMMIT and promote;
 *   - when the sweeper has resolved the writer's log row (G6: "the sweeper resolves ... without waiting for
 *     expiry"), which covers a crashed writer whose lock was dropped before its COMMIT. */
inline settle(ver) {
  if
  :: ver > settled -> settled = ver
  :: else -> skip
  fi
}

/* ------------------------------------------------------------------------------------------------------
 * memcached commands.  They work on locals that every process declares: `self` (its slot), the entry read
 * (ek kind, ev val, eg gen, eh holders, ec conc), `ok` (stored or deleted?), and the transition to apply
 * (act, and the entry to write: nk, nv, ng, nh, nc).
 * ------------------------------------------------------------------------------------------------------ */
inline store(key, k, v, g, h, c) {
  cell[key].kind = k; cell[key].val = v; cell[key].gen = g; cell[key].holders = h; cell[key].conc = c;
  valid[key] = 0
}
inline clear(key) {
  cell[key].kind = EMPTY; cell[key].val = 0; cell[key].gen = 0; cell[key].holders = 0; cell[key].conc = 0;
  valid[key] = 0
}

/* get: the entry, and a token (bit `self` of valid[key]) */
inline mc_get(key) {
  ek = cell[key].kind; ev = cell[key].val; eg = cell[key].gen; eh = cell[key].holders; ec = cell[key].conc;
  if
  :: ek != EMPTY -> valid[key] = valid[key] | ME
  :: else -> skip
  fi
}
/* add: stores only if the key is absent; the adder gets the new token */
inline mc_add(key, k, v, g, h, c) {
  if
  :: cell[key].kind == EMPTY -> store(key, k, v, g, h, c); valid[key] = ME; ok = true
  :: else -> ok = false
  fi
}
/* cas: stores only if the key exists and nothing changed it since our token; we get the new token */
inline mc_cas(key, k, v, g, h, c) {
  if
  :: cell[key].kind != EMPTY && (valid[key] & ME) -> store(key, k, v, g, h, c); valid[key] = ME; ok = true
  :: else -> ok = false
  fi
}
/* delete with cas: deletes only if nothing changed the key since our token */
inline mc_delete_cas(key) {
  if
  :: cell[key].kind != EMPTY && (valid[key] & ME) -> clear(key); ok = true
  :: else -> ok = false
  fi
}
/* set: unconditional store.  The correct protocol never uses it; only the mutations do. */
inline mc_set(key, k, v, g, h, c) {
  store(key, k, v, g, h, c)
}

/* ------------------------------------------------------------------------------------------------------
 * Key transitions (lib/protocol/key-transitions.ts).  `decide` computes, from the entry just read, what to
 * do: keep, write an entry, delete, or write a fresh generation.  `mode` picks the transition.
 * ------------------------------------------------------------------------------------------------------ */
#define A_KEEP   0
#define A_PUT    1   /* write (nk, nv, ng, nh, nc): add if the key was absent, else cas */
#define A_DEL    2   /* delete with cas (nothing to do if the key was absent) */
#define A_NEWGEN 3   /* write a fresh generation (region key) */

#define M_PREPARE 1
#define M_PROMOTE 2  /* the writer's own promote: it knows its exact new value (`put`), version `me` */
#define M_RELEASE 3
#define M_SWEEP   4  /* the sweeper: promote WITHOUT a value */

#define BIT(w) (1 << (w))
#define PUT(k, v, g, h, c) act = A_PUT; nk = k; nv = v; ng = g; nh = h; nc = c

/* Trail output (SPIN prints these when it replays a counterexample with `spin -t`; they add no state). */
inline showcell(key) {
  if
  :: cell[key].kind == EMPTY -> printf("EMPTY\n")
  :: cell[key].kind == VALUE -> printf("VALUE(v%d, gen %d)\n", cell[key].val, cell[key].gen)
  :: cell[key].kind == LOCK -> printf("LOCK(holders %d, concurrent %d, prior %d)\n", cell[key].holders, cell[key].conc, cell[key].gen)
  :: cell[key].kind == LEASE -> printf("LEASE(reader %d)\n", cell[key].val - 1)
  :: cell[key].kind == GEN -> printf("GEN(%d)\n", cell[key].val)
  fi
}
inline say(key) {
  if
  :: self < NW -> printf("writer %d ", self)
  :: self >= NW && self < NW + NR -> printf("reader %d ", self - NW)
  :: else -> printf("sweeper ")
  fi;
  if
  :: mode == M_PREPARE -> printf("prepare")
  :: mode == M_PROMOTE -> printf("promote")
  :: mode == M_RELEASE -> printf("release")
  :: mode == M_SWEEP -> printf("sweeps row of writer %d", w)
  :: else -> skip
  fi;
  printf(" key %d -> ", key); showcell(key)
}

inline decide(key, w) {
  if
  :: mode == M_PREPARE ->
       /* prepareTransition: lock for w; a lock of others gains w and becomes concurrent; a region lock
        * remembers the generation it replaced (its prior) */
       if
       :: ek == LOCK && (eh & BIT(w)) != 0 -> act = A_KEEP
       :: ek == LOCK && (eh & BIT(w)) == 0 -> PUT(LOCK, 0, eg, eh | BIT(w), true)
       :: ek == GEN -> PUT(LOCK, 0, ev, BIT(w), false)
       :: else -> PUT(LOCK, 0, 0, BIT(w), false)
       fi
  :: mode == M_PROMOTE || mode == M_SWEEP ->
       /* promoteTransition, after COMMIT */
       if
       :: ek == EMPTY -> act = A_KEEP
       :: ek == LOCK && (eh & BIT(w)) == 0 ->
            /* not ours (ours expired or was evicted; someone locked again): their values could be older
             * than our commit, so mark it concurrent */
            if
            :: ec && eg == 0 -> act = A_KEEP
            :: else -> PUT(LOCK, 0, 0, eh, true)
            fi
       :: ek == LOCK && (eh & BIT(w)) != 0 && eh != BIT(w) ->
            PUT(LOCK, 0, 0, eh ^ BIT(w), true)           /* shared: leave the others, concurrent */
       :: ek == LOCK && eh == BIT(w) ->                   /* ours alone */
            if
            :: key == RKEY -> act = A_NEWGEN              /* regions: a new generation */
#ifdef NO_CONCURRENT_FLAG
            :: key != RKEY && mode == M_PROMOTE && (key != QRES || tag != 0) -> PUT(VALUE, me, tag, 0, 0)  /* BUG: even if ever shared */
#else
            :: key != RKEY && mode == M_PROMOTE && !ec && (key != QRES || tag != 0) -> PUT(VALUE, me, tag, 0, 0)  /* never shared */
#endif
            :: else -> act = A_DEL                        /* evict */
            fi
       :: else -> act = A_DEL                             /* a value, lease, generation: may predate: evict */
       fi
  :: mode == M_RELEASE ->
       /* releaseTransition, after ROLLBACK: remove w; a never-shared region lock gets its prior generation
        * back (G7); an item held alone is deleted; keys w no longer holds are left alone */
       if
       :: ek != LOCK || (eh & BIT(w)) == 0 -> act = A_KEEP
       :: ek == LOCK && (eh & BIT(w)) != 0 && eh != BIT(w) -> PUT(LOCK, 0, eg, eh ^ BIT(w), ec)
       :: ek == LOCK && eh == BIT(w) && key == RKEY && !ec && eg != 0 -> PUT(GEN, eg, 0, 0, 0)
       :: else -> act = A_DEL
       fi
  fi
}

/* Write what `decide` chose, against the token of the read (cas-batch.ts: add if the key was absent, cas
 * otherwise; delete-cas; keep).  Afterwards the process holds no token for the key. */
inline apply(key) {
  if
  :: act == A_NEWGEN -> PUT(GEN, nextgen, 0, 0, 0); fresh = true
  :: else -> skip
  fi;
  if
  :: act == A_KEEP -> ok = true
  :: act == A_DEL && ek == EMPTY -> ok = true
  :: act == A_DEL && ek != EMPTY -> mc_delete_cas(key)
  :: act == A_PUT && ek == EMPTY -> mc_add(key, nk, nv, ng, nh, nc)
  :: act == A_PUT && ek != EMPTY -> mc_cas(key, nk, nv, ng, nh, nc)
  fi;
  if
  :: ok && fresh -> nextgen++
  :: else -> skip
  fi;
  valid[key] = valid[key] & ~ME;
  act = 0; nk = 0; nv = 0; ng = 0; nh = 0; nc = 0; fresh = 0; ek = 0; ev = 0; eg = 0; eh = 0; ec = 0
}

/* One key transition, retried until its write wins (cas-batch.ts applyTransitions; the library gives up
 * after maxCasRounds and then follows its failure policy, which only adds a rollback -- modelled anyway). */
#ifdef FINE_GRAIN
#define TRANSITION(key, w, m) \
  do \
  :: d_step { mode = m; mc_get(key); decide(key, w) }; \
     d_step { apply(key); if :: ok -> say(key) :: else -> skip fi; mode = 0 }; \
     if \
     :: ok -> break \
     :: else -> skip \
     fi \
  od; \
  ok = false
#else
#define TRANSITION(key, w, m) \
  atomic { d_step { mode = m; mc_get(key); decide(key, w); apply(key); say(key); mode = 0; ok = false } }
#endif

/* A writer may die at any instant.  A process that dies is indistinguishable, for everyone else, from one
 * that is never scheduled again, and SPIN explores every such schedule: so every crash instant is covered
 * by the safety checks whether or not it is written out.  The CRASH points below make the crashes explicit
 * where the cache is left in a different state (locks held before COMMIT; locks held after COMMIT; in the
 * middle of promote) so that the end-of-run checks (G12) also run after crashes. */
#ifdef NO_CRASH
#define CRASH skip
#else
#define CRASH if :: skip :: goto crashed fi
#endif

/* ------------------------------------------------------------------------------------------------------
 * Writer w: one database transaction that changes the row (and, with REGION, writes the table).  It knows
 * its exact new value (`put`), the demanding case: promote may write that value into the cache.
 * ------------------------------------------------------------------------------------------------------ */
/* Write-through: the get of the region key's generation (0 when it holds none). */
#define READ_TAG \
  d_step { if :: cell[RKEY].kind == GEN -> tag = cell[RKEY].val :: else -> tag = 0 fi; \
           printf("writer 0 reads the region's generation: %d\n", tag) }

proctype Writer(byte w) {
  byte self = w; byte ek, ev, eg, eh; bool ec; bool ok;
  byte mode, act, nk, nv, ng, nh; bool nc, fresh;
  byte me;
  byte tag;  /* WRITE_THROUGH: the region generation its value is recorded with (0: none, evict instead) */
  bool early;  /* WRITE_THROUGH: it was read before prepare */

  /* 1. prepare, inside the transaction just before COMMIT: lock the key.  The log row is inserted by
   *    the same transaction, so it becomes durable exactly at the COMMIT below (modelled there). */
#if defined(WRITE_THROUGH) && !defined(WT_TAG_AT_PROMOTE)
  /* write-through: one get of the region key before COMMIT (region-generations.ts), either before prepare (rows
   * the ORM named, read early) or after it (rows only the capture named); a lock, an absent key: no generation,
   * and promote evicts instead of writing */
  if
  :: w == 0 -> early = true; READ_TAG
  :: skip
  fi;
#endif
#if !defined(NO_LOCK) && !(defined(REGION) && defined(NO_REGION_LOCK))
  TRANSITION(WK(w), w, M_PREPARE);
#endif
#if defined(WRITE_THROUGH) && !defined(WT_TAG_AT_PROMOTE)
  if
  :: w == 0 && !early -> READ_TAG
  :: else -> skip
  fi;
#endif
  CRASH;
  if
  :: /* 2. COMMIT, the decision: the version bump and the log row are one atomic database commit. */
     atomic { d_step {
       dbv++; me = dbv; committedv[w] = me; logrow[w] = true;
       printf("writer %d COMMIT: database version %d, log row written\n", w, me);
#ifdef NO_TTL_ASSUMPTION
       settle(me)
#else
       if
       :: !lost[w] -> settle(me)   /* its lock protected the key up to now and does from now on */
       :: else -> skip             /* its lock was dropped before COMMIT: only promote/sweeper protect */
       fi
#endif
     } };
     /* 3. promote, after COMMIT (a crash here also stands for "COMMIT outcome unknown to the client") */
     CRASH;
#if defined(NO_CAS_PROMOTE) && !defined(REGION)
     d_step { mc_set(ITEM, VALUE, me, 0, 0, 0);     /* BUG: a plain set, whatever the key holds */
              printf("writer %d promote: set VALUE(v%d)\n", w, me) };
#else
#ifdef WT_TAG_AT_PROMOTE
     if   /* BUG: the generation read after COMMIT may already be one a later region-wide commit made */
     :: w == 0 -> READ_TAG
     :: else -> skip
     fi;
#endif
     TRANSITION(WK(w), w, M_PROMOTE);
#endif
     d_step { settle(me); printf("writer %d: commit returned (v%d)\n", w, me); finished++; me = 0 }
                                                    /* the commit call returns: G2 from here */
  :: /* 2'. ROLLBACK, then release. */
     printf("writer %d ROLLBACK\n", w);
     TRANSITION(WK(w), w, M_RELEASE);
     d_step { finished++ }
  fi;
  goto end;
crashed:
  atomic { d_step { crashedmask = crashedmask | BIT(w); finished++; me = 0; printf("writer %d CRASHED\n", w) } };
end:
  skip
}

/* ------------------------------------------------------------------------------------------------------
 * Reader r (cache-reader.ts).  Item: get; a VALUE is a hit (served here: the properties are checked at
 * this instant); a LOCK or a LEASE is a miss without fill (the reader reads the database and serves that);
 * an absent key gets a LEASE (add), the database is read, and the value is filled with cas against the
 * lease's token.  A query (REGION): get the result and the region key; a result whose generation is the
 * current one is a hit; else, unless the region is locked or the result leased, lease the result (add if
 * absent, cas over a stale result), add a fresh generation if the region key is absent, read the
 * database, fill the result tagged with the generation read.
 * ------------------------------------------------------------------------------------------------------ */

/* (SPIN forbids jumping -- e.g. falling out of an if or do -- to a d_step; `atomic { d_step {..} }` is the
 * same single step and may be jumped to.) */

/* Serve version v from the cache, for a read whose floor is f. */
#define SERVE(v, f) \
  printf("reader %d: HIT, serves v%d (database at v%d, floor v%d)\n", r, v, dbv, f); \
  assert((v) <= dbv);  /* G1: it was committed */ \
  assert((v) >= (f))   /* G2/G3/G6/G11: not older than what was protected when the read began */

proctype Reader(byte r) {
  byte self = NW + r; byte ek, ev, eg, eh; bool ec; bool ok;
  byte n; byte d; bool leased;
#ifdef REGION
  byte floor; byte rk, rv; byte curgen;
#endif
  do
  :: n < NREADS ->
     n++;
#ifndef REGION
     /* read the row */
#ifdef FINE_GRAIN
     d_step {
       mc_get(ITEM); valid[ITEM] = valid[ITEM] & ~ME;
       if
       :: ek == VALUE -> SERVE(ev, settled)                 /* hit */
       :: else -> skip
       fi
     };
     if
     :: ek == EMPTY ->
          d_step { mc_add(ITEM, LEASE, r + 1, 0, 0, 0); leased = ok; ok = false };
          if
          :: leased -> d = dbv                             /* the database read, after the lease */
          :: else -> skip
          fi
     :: else -> skip
     fi;
#else
     d_step {
       ek = cell[ITEM].kind; ev = cell[ITEM].val;
       if
       :: ek == VALUE -> SERVE(ev, settled)                 /* hit */
       :: ek == EMPTY ->                                    /* miss: lease (add) and read the database */
            mc_add(ITEM, LEASE, r + 1, 0, 0, 0); leased = ok; ok = false;
            if
            :: leased -> d = dbv; printf("reader %d: miss, LEASE, reads database: v%d\n", r, d)
            :: else -> skip
            fi
       :: else -> skip                                      /* locked or leased: database, no fill */
       fi;
       ek = 0; ev = 0
     };
#endif
     if
     :: leased ->                                           /* fill */
          d_step {
#ifdef NO_LEASE
            mc_set(ITEM, VALUE, d, 0, 0, 0); ok = true;     /* BUG: fill without checking the lease */
#else
            mc_cas(ITEM, VALUE, d, 0, 0, 0);                /* refused if anything touched the key */
#endif
            if
            :: ok -> printf("reader %d: fills v%d\n", r, d)
            :: else -> printf("reader %d: fill of v%d refused\n", r, d)
            fi;
            valid[ITEM] = valid[ITEM] & ~ME; d = 0; leased = false; ok = false; ek = 0
          }
     :: else -> ek = 0
     fi
#else
     /* run the query */
     d_step { floor = settled; mc_get(QRES) };              /* getMulti: the result, then its region */
     d_step {
       rk = cell[RKEY].kind; rv = cell[RKEY].val;
       if
       :: rk == GEN && ek == VALUE && eg == rv -> SERVE(ev, floor)   /* hit: current generation */
       :: rk == LOCK || ek == LEASE || ek == LOCK -> skip   /* region locked / being filled / row locked
                                                               (WRITE_THROUGH): database, no fill */
       :: else ->
            /* a miss: absent, or stale (read under an older generation) */
            curgen = rv;
            if
            :: rk == EMPTY -> curgen = nextgen; nextgen++;  /* add a fresh generation (I4, G11) */
                 store(RKEY, GEN, curgen, 0, 0, 0)
            :: else -> skip
            fi;
            if
            :: ek == EMPTY -> mc_add(QRES, LEASE, r + 1, 0, 0, 0)
            :: else -> mc_cas(QRES, LEASE, r + 1, 0, 0, 0)
            fi;
            leased = ok; ok = false;
#ifndef FINE_GRAIN
            if
            :: leased -> d = dbv                            /* run the query in the database */
            :: else -> skip
            fi
#endif
       fi;
       rk = 0; rv = 0; floor = 0; ek = 0; ev = 0; eg = 0; eh = 0; ec = 0;
       if
       :: !leased -> valid[QRES] = valid[QRES] & ~ME; curgen = 0
       :: else -> skip
       fi
     };
#ifdef FINE_GRAIN
     if
     :: leased -> d = dbv
     :: else -> skip
     fi;
#endif
     if
     :: leased ->
          d_step {
#ifdef NO_LEASE
            mc_set(QRES, VALUE, d, curgen, 0, 0);
#else
            mc_cas(QRES, VALUE, d, curgen, 0, 0);
#endif
            valid[QRES] = valid[QRES] & ~ME; d = 0; curgen = 0; leased = false; ok = false
          }
     :: else -> skip
     fi
#endif
  :: else -> break
  od;
  finished++
}

#define SWEEP_ROW TRANSITION(WK(w), w, M_SWEEP); d_step { logrow[w] = false; settle(committedv[w]); w = 0 }

/* ------------------------------------------------------------------------------------------------------
 * Recovery sweeper (recovery-sweeper.ts): for each log row -- a committed transaction whose promote may not
 * have finished, or has (rows are deleted lazily) -- apply promote WITHOUT a value to its keys, then delete
 * the row.  It may act at any instant after the COMMIT (the real one waits minAgeMs; acting earlier only
 * adds behaviours, and it must be safe alongside the owner's own promote).  When every writer and reader
 * has ended and no row is left, it checks G12.
 * ------------------------------------------------------------------------------------------------------ */
proctype Sweeper() {
  byte self = NW + NR; byte ek, ev, eg, eh; bool ec; bool ok;
  byte mode, act, nk, nv, ng, nh; bool nc, fresh;
  byte me;   /* unused: the sweeper never has a value */
  byte tag;  /* unused */
  byte w;
  do
  :: logrow[0] -> w = 0; SWEEP_ROW
  :: logrow[1] -> w = 1; SWEEP_ROW
  :: finished == NW + NR && !logrow[0] && !logrow[1] -> break
  od;
  /* G12: after the workload and the sweeps: no log row (the loop exit), no lease, and no lock held by a
   * writer that did not crash (a crashed writer's lock waits for its TTL, see Memcached). */
#ifdef REGION
  assert(cell[QRES].kind != LEASE);
#else
  assert(cell[ITEM].kind != LEASE);
#endif
  assert(cell[WK(0)].kind != LOCK || (cell[WK(0)].holders & ~crashedmask) == 0);
  assert(cell[WK(1)].kind != LOCK || (cell[WK(1)].holders & ~crashedmask) == 0)
}

/* ------------------------------------------------------------------------------------------------------
 * memcached itself: at any instant it may evict any entry (memory pressure; a restart empties everything
 * the same way) or expire a lock or a lease (its TTL ran out, on the server's own clock).  Both make the
 * entry absent, so one transition models both.  A lock dropped before its holder's COMMIT is noted in the
 * ghost `lost`: docs/protocol.md lists that case under "Known limits".
 * ------------------------------------------------------------------------------------------------------ */
inline evict(key) {
  d_step {
    cell[key].kind != EMPTY ->
    if
    :: cell[key].kind == LOCK ->
         if :: (cell[key].holders & 1) && committedv[0] == 0 -> lost[0] = true :: else -> skip fi;
         if :: (cell[key].holders & 2) && committedv[1] == 0 -> lost[1] = true :: else -> skip fi
    :: else -> skip
    fi;
    clear(key);
    printf("memcached evicts/expires key %d\n", key)
  }
}

proctype Memcached() {
end:
  do
#ifdef REGION
  :: evict(QRES)
  :: evict(RKEY)
#else
  :: evict(ITEM)
#endif
  od
}

init {
  atomic {
    run Writer(0); run Writer(1);
    run Reader(0); run Reader(1);
    run Sweeper();
#ifndef NO_EVICT
    run Memcached();
#endif
  }
}
