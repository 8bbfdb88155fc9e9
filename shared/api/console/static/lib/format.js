// Small formatters shared by the views.
import { h } from './dom.js';

/** 1234 -> "1.2 s"; 65000 -> "1 m 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '—';
  const n = Number(ms);
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(n < 10000 ? 1 : 0)} s`;
  const minutes = Math.floor(n / 60000);
  if (minutes < 60) return `${minutes} m ${Math.round((n % 60000) / 1000)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} m`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** An ISO time as "3 minutes ago" / "in 2 hours". */
export function relativeTime(iso) {
  if (!iso) return '—';
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return String(iso);
  const seconds = Math.round((then - Date.now()) / 1000);
  const rtf = new Intl.RelativeTimeFormat('en', {numeric: 'auto'});
  const units = [['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return rtf.format(Math.round(seconds / size), unit);
    }
  }
  return String(iso);
}

/** A full local timestamp, for title attributes. */
export function absoluteTime(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

/** 0.953 -> "95.3%". */
export function percent(ratio) {
  if (ratio === null || ratio === undefined) return '—';
  return `${(Number(ratio) * 100).toFixed(ratio === 1 || ratio === 0 ? 0 : 1)}%`;
}

const KNOWN = new Set(['pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled',
  'retrying', 'skipped', 'timed_out', 'queued', 'paused', 'active', 'inactive']);

/** A coloured status pill: <span class="badge badge-failed">failed</span>. */
export function statusBadge(status) {
  const s = String(status || 'unknown').toLowerCase();
  return h('span', {class: ['badge', `badge-${KNOWN.has(s) ? s : 'unknown'}`], 'data-status': s},
    s.replace('_', ' '));
}
