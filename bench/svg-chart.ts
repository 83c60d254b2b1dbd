/** One panel of the chart: a workload, and each contender's throughput in it. */
export interface ChartPanel {
  readonly title: string;
  readonly bars: ReadonlyArray<{ readonly label: string; readonly value: number | undefined; readonly highlight?: boolean }>;
}

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : Math.round(n).toLocaleString('en-US'));

/**
 * Small multiples of horizontal bars, one panel per workload, each with its own linear scale (throughputs differ
 * by orders of magnitude between workloads); a missing value (contender skipped or failed) is drawn as "n/a".
 */
export function barChartSvg(title: string, subtitle: string, panels: readonly ChartPanel[], columns = 2): string {
  const labelWidth = 150;
  const barArea = 260;
  const valueWidth = 60;
  const panelWidth = labelWidth + barArea + valueWidth + 20;
  const barHeight = 18;
  const gap = 6;
  const rows = Math.max(...panels.map((p) => p.bars.length));
  const panelHeight = 30 + rows * (barHeight + gap) + 10;
  const top = 56;
  const width = columns * panelWidth + 20;
  const height = top + Math.ceil(panels.length / columns) * panelHeight + 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">${escape(title)}</text>`);
  out.push(`<text x="10" y="40" fill="#555">${escape(subtitle)}</text>`);
  panels.forEach((panel, index) => {
    const x0 = 10 + (index % columns) * panelWidth;
    const y0 = top + Math.floor(index / columns) * panelHeight;
    const max = Math.max(1, ...panel.bars.map((b) => b.value ?? 0));
    out.push(`<text x="${x0}" y="${y0 + 16}" font-weight="bold">${escape(panel.title)}</text>`);
    panel.bars.forEach((bar, i) => {
      const y = y0 + 26 + i * (barHeight + gap);
      out.push(`<text x="${x0 + labelWidth - 6}" y="${y + 13}" text-anchor="end">${escape(bar.label)}</text>`);
      if (bar.value === undefined) {
        out.push(`<text x="${x0 + labelWidth + 4}" y="${y + 13}" fill="#999">n/a</text>`);
        return;
      }
      const w = Math.max(1, (bar.value / max) * barArea);
      out.push(`<rect x="${x0 + labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${bar.highlight ? '#d9480f' : '#4c6ef5'}"/>`);
      out.push(`<text x="${x0 + labelWidth + w + 4}" y="${y + 13}">${fmt(bar.value)}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
