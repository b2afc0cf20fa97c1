/**
 * A table that renders only the rows in view (plus a few either side): 30,000 hosts scroll as smoothly as 30,
 * since the DOM holds a few dozen rows whatever the length. Rows have one fixed height; the body is a
 * scrolling box whose inner spacer has the full height, and the rows in view sit translated to their place.
 * Rows are keyed by their slot in the window, not by their item: a scroll patches the text of the same few
 * dozen row elements instead of making new ones. Keyboard: the box takes focus (Tab) and scrolls with the
 * arrows, Page Up/Down, Home and End.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export interface Column<T> {
  title: string;
  width: string;
  cell(row: T): ComponentChildren;
}

const ROW = 30;
const OVERSCAN = 8;

export function VirtualTable<T>(p: { rows: T[]; columns: Column<T>[]; rowKey(row: T): string; label: string; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(p.height ?? 480);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fit = () => setHeight(p.height ?? Math.max(200, window.innerHeight - el.getBoundingClientRect().top - 24));
    fit();
    window.addEventListener('resize', fit);
    return () => window.removeEventListener('resize', fit);
  }, []);
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(p.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
  const grid = p.columns.map((c) => c.width).join(' ');
  return (
    <div class="vtable" role="table" aria-label={p.label} aria-rowcount={p.rows.length + 1}>
      <div class="vrow vhead" role="row" style={{ gridTemplateColumns: grid }}>
        {p.columns.map((c) => <div role="columnheader" key={c.title}>{c.title}</div>)}
      </div>
      <div
        class="vbody"
        ref={box}
        tabIndex={0}
        style={{ height: `${height}px` }}
        onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)}
      >
        <div style={{ height: `${p.rows.length * ROW}px`, position: 'relative' }} role="rowgroup">
          {p.rows.slice(first, last).map((r, i) => (
            <div class="vrow" role="row" aria-rowindex={first + i + 2} key={(first + i) % (last - first + 1)} data-key={p.rowKey(r)} style={{ gridTemplateColumns: grid, transform: `translateY(${(first + i) * ROW}px)` }}>
              {p.columns.map((c) => <div role="cell" key={c.title}>{c.cell(r)}</div>)}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
