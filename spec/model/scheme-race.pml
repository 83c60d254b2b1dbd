/*
 * A conjunction scheme appearing while a writer runs (docs/protocol.md, "Conjunction regions"; docs/model.md).
 *
 * One row moves between the predicate a = 0 and a = 1: each of two writers toggles it (PostgreSQL's row lock
 * serialises them from UPDATE to COMMIT). A reader caches the result of `a = 0` under the scheme {a}, which a
 * registrar adds to the table's scheme set while the writers run. memcached keys:
 *
 *   inflight        holders of the table's in-flight region (t:<table>), a bit per writer
 *   sset[ver]       the scheme set: ABSENT, PENDING or ESTABLISHED; `ver` counts re-creations (a lost set comes
 *                   back under a new version, which names other conjunction regions)
 *   clock, cgen     the conjunction region of a = 0 under the current version: lock holders, generation (0: absent)
 *   item            the cached result: EMPTY, LEASE or VALUE(version, generation, set version)
 *
 * Property (G2/G3, strong form): a served result is never older than the newest COMMIT that finished before the read
 * started (`floor`; every commit changes the result, so "older" is exact). Mutations:
 *   -DNO_INFLIGHT_CHECK  the registrar establishes the scheme without waiting for the writers it saw in flight
 *   -DREAD_BEFORE_JOIN   writers read the scheme set before joining the in-flight region
 *   -DNO_OLD_VALUE       writers name the conjunction of their new value only
 */

#define ABSENT 0
#define PENDING 1
#define ESTABLISHED 2
#define EMPTY 0
#define LEASE 1
#define VALUE 2
#ifndef NREADS
#define NREADS 3
#endif

byte dbv = 0;          /* committed version; the row is in a = 0 iff dbv is even */
byte floor = 0;        /* raised at each COMMIT */
bit rowlock = 0;       /* PostgreSQL's row lock, UPDATE to COMMIT */

byte sset = ABSENT;
byte ver = 0;          /* current version of the scheme set */
bit lost = 0;          /* the set was lost once (bounds the model) */

byte inflight = 0;
byte clock[2];         /* per set version */
byte cgen[2];
byte nextgen = 2;

byte item = EMPTY;
byte itemv; byte itemg; byte itemver;
bit leasevalid = 0;

byte done = 0;

proctype Writer(byte me) {
  byte old; bit sawS = 0; byte wv;
  atomic { rowlock == 0 -> rowlock = 1; old = dbv % 2 }        /* UPDATE: old value, new = 1 - old */
#ifdef READ_BEFORE_JOIN
  atomic { sawS = (sset != ABSENT); wv = ver }
  atomic { inflight = inflight | (1 << me) }
#else
  atomic { inflight = inflight | (1 << me) }                    /* prepare: join the in-flight region ... */
  atomic { sawS = (sset != ABSENT); wv = ver }                   /* ... then read the scheme set */
#endif
#ifdef NO_OLD_VALUE
  if :: sawS && (1 - old) == 0 -> atomic { clock[wv] = clock[wv] | (1 << me) } :: else -> skip fi
#else
  if :: sawS -> atomic { clock[wv] = clock[wv] | (1 << me) } :: else -> skip fi   /* old or new value is 0 */
#endif
  atomic { dbv++; floor = dbv; rowlock = 0 }                     /* COMMIT */
  atomic {                                                       /* promote: the last holder renews */
    if
    :: clock[wv] & (1 << me) ->
       clock[wv] = clock[wv] & ~(1 << me);
       if :: clock[wv] == 0 -> cgen[wv] = nextgen; nextgen++ :: else -> skip fi
    :: else -> skip
    fi
  }
  atomic { inflight = inflight & ~(1 << me); done++ }
}

proctype Registrar() {
  byte H; byte rv;
  do
  :: sset == ESTABLISHED || done == 2 -> break
  :: sset != ESTABLISHED ->
     atomic { if :: sset == ABSENT -> sset = PENDING :: else -> skip fi; rv = ver }  /* add pending (add/cas) */
     atomic { H = inflight }                                     /* read strictly after the scheme was in the set */
#ifdef NO_INFLIGHT_CHECK
     skip;
#else
     (inflight & H) == 0;                                        /* a later call finds them all gone */
#endif
     atomic { if :: sset == PENDING && ver == rv -> sset = ESTABLISHED :: else -> skip fi }  /* cas */
  od
}

proctype Reader() {
  byte n = 0; byte f; byte v; byte g; byte rv; bit leased;
  do
  :: n == NREADS -> break
  :: n < NREADS ->
     leased = 0;
     atomic {
       f = floor;
       if
       :: sset != ESTABLISHED || clock[ver] != 0 -> v = dbv; assert(v >= f)   /* the table's path, or locked: no fill */
       :: else ->
          rv = ver;
          if
          :: cgen[rv] == 0 -> cgen[rv] = nextgen; nextgen++;  /* absent region: a fresh generation, no hit */
             if :: item != LEASE -> item = LEASE; leasevalid = 1; g = cgen[rv]; leased = 1 :: else -> skip fi
          :: cgen[rv] != 0 && item == VALUE && itemg == cgen[rv] && itemver == rv -> assert(itemv >= f)   /* hit */
          :: else ->
             if :: item != LEASE -> item = LEASE; leasevalid = 1; g = cgen[rv]; leased = 1 :: else -> v = dbv fi
          fi
       fi
     }
     if
     :: leased ->
        v = dbv;                                                 /* the database read */
        atomic { if :: item == LEASE && leasevalid -> item = VALUE; itemv = v; itemg = g; itemver = rv; leasevalid = 0 :: else -> skip fi }
     :: else -> skip
     fi;
     n++
  od
}

/* memcached drops entries at any time: the result, a region generation, or the scheme set itself (once). */
proctype Evictor() {
  do
  :: atomic { item = EMPTY; leasevalid = 0 }
  :: atomic { clock[ver] == 0 && cgen[ver] != 0 -> cgen[ver] = 0 }
  :: atomic { lost == 0 && sset != ABSENT -> sset = ABSENT; ver = 1; lost = 1 }
  :: break
  od
}

init {
  cgen[0] = 1; cgen[1] = 0;
  atomic {
    run Writer(0); run Writer(1); run Registrar(); run Reader(); run Evictor()
  }
}
