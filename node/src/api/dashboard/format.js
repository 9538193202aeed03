// Job states and how values are shown.

import { el } from './dom.js';

export const STATES = ['waiting', 'queued', 'running', 'passed', 'failed', 'timed_out', 'error', 'cancelled', 'skipped'];
export const STATE_LABELS = {
  waiting: 'Waiting', queued: 'Queued', running: 'Running', passed: 'Passed', failed: 'Failed',
  timed_out: 'Timed out', error: 'Error', cancelled: 'Cancelled', skipped: 'Skipped',
};
export const FINAL = new Set(['passed', 'failed', 'timed_out', 'error', 'cancelled', 'skipped']);

export function shortCommit(sha) {
  return String(sha || '').slice(0, 8);
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const whole = Math.floor(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, '0')}m`;
  return `${minutes}m ${rest}s`;
}

export function jobDuration(job) {
  if (job.duration_ms !== null && job.duration_ms !== undefined) {
    return formatDuration(job.duration_ms);
  }
  if (job.state === 'running' && job.started_at) {
    return formatDuration(Math.max(0, Date.now() - job.started_at));
  }
  return '—';
}

export function formatTime(ms) {
  if (!ms) return '—';
  const date = new Date(ms);
  if (date.toDateString() === new Date().toDateString()) {
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  return date.toLocaleString([], {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

export function isoTime(ms) {
  return ms ? new Date(ms).toISOString() : '';
}

export function stateBadge(state) {
  const known = STATE_LABELS[state] ? state : 'unknown';
  return el('span', { class: `badge state-${known}` }, STATE_LABELS[state] || String(state));
}

/** The test counts parsed from a job's output, as a short cell. */
export function testCounts(summary) {
  if (!summary) return el('span', { class: 'muted' }, '—');
  const total = summary.passed + summary.failed;
  if (summary.failed > 0) {
    return el('span', { class: 'tests tests-failed', title: summary.failing.join('\n') || null },
      `${summary.failed} of ${total} failed`);
  }
  return el('span', { class: 'tests' }, `${summary.passed} passed`);
}
