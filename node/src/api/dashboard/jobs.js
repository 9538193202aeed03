// The jobs table, shared by the overview and the commit page.

import { el, syncList } from './dom.js';
import { isoTime, formatTime, jobDuration, shortCommit, stateBadge, testCounts } from './format.js';
import { cluster, nodeName } from './api.js';

export const JOB_HEADINGS = [
  ['Job'], ['State'], ['Branch'], ['Commit', 'col-commit'], ['Runner', 'col-opt'], ['Attempt', 'col-opt num'],
  ['Tests', 'col-opt'], ['Duration', 'num'], ['Created', 'col-opt'],
];

function jobSignature(job) {
  const ticking = job.state === 'running' ? Math.floor(Date.now() / 1000) : 0;
  return JSON.stringify(job) + cluster.namesKey + ticking;
}

function jobRow(job) {
  const link = `#/job/${encodeURIComponent(job.id)}`;
  const row = el('tr', {
    class: 'job-row',
    dataset: { jobId: job.id, state: job.state },
    onclick: (event) => {
      if (!event.target.closest('a, button') && !window.getSelection().toString()) {
        location.hash = link;
      }
    },
  },
  el('td', { class: 'col-id' },
    el('a', { href: link, dataset: { focusKey: 'job' } }, `#${job.id}`),
    job.trigger === 'rerun' ? el('span', { class: 'tag', title: 'Started by a rerun' }, 'rerun') : null),
  el('td', { title: job.message || null }, stateBadge(job.state)),
  el('td', { class: 'col-branch' }, el('span', { class: 'branch', title: job.branch }, job.branch)),
  el('td', { class: 'mono col-commit' },
    el('a', {
      href: `#/commit/${encodeURIComponent(job.commit)}`, title: job.commit,
      dataset: { focusKey: 'commit' },
    }, shortCommit(job.commit))),
  el('td', { class: 'col-opt' }, nodeName(job.runner)),
  el('td', { class: 'col-opt num' }, job.attempt),
  el('td', { class: 'col-opt' }, testCounts(job.summary)),
  el('td', { class: 'num' }, jobDuration(job)),
  el('td', { class: 'col-opt muted', title: isoTime(job.created_at) }, formatTime(job.created_at)));
  return row;
}

export function syncJobs(body, jobs) {
  syncList(body, jobs, (job) => job.id, jobSignature, jobRow);
}
