// The builds of one commit, each as a graph of its jobs: one column per stage (a job
// stands one column right of the last job it needs), each job a card with its state,
// duration, runner and artifacts, linked to its page (output, attempts). Used by the
// commit page.

import { el, setChildren } from './dom.js';
import { formatDuration, shortCommit, stateBadge } from './format.js';
import { nodeName } from './api.js';

/** The stage of every job of `build`: 0 without needs, else one after its latest need. */
function stages(build) {
  const stage = new Map();
  for (const job of build.jobs) {
    const before = job.needs.map((id) => stage.get(id) ?? 0);
    stage.set(job.id, job.needs.length ? Math.max(...before) + 1 : 0);
  }
  return stage;
}

function jobCard(job, names) {
  const needs = job.needs.map((id) => names.get(id) || `#${id}`);
  const artifacts = job.artifacts.map((artifact) =>
    el('li', {},
      el('a', { href: `/api/v1/jobs/${job.id}/artifacts/${artifact.name.split('/').map(encodeURIComponent).join('/')}`, download: '' }, artifact.name),
      el('span', { class: 'muted' }, ` ${artifact.size} B`)));
  return el('a', { class: `step step-${job.state}`, href: `#/job/${job.id}`, 'data-job': String(job.id) },
    el('div', { class: 'step-head' }, stateBadge(job.state), el('span', { class: 'step-name' }, job.name)),
    el('div', { class: 'muted step-meta' },
      [job.duration_ms != null ? formatDuration(job.duration_ms) : '', job.runner ? nodeName(job.runner) : '']
        .filter(Boolean).join(' · ') || '—'),
    needs.length ? el('div', { class: 'muted step-needs' }, `after ${needs.join(', ')}`) : null,
    job.message && job.state !== 'passed' ? el('div', { class: 'step-message' }, job.message) : null,
    artifacts.length ? el('ul', { class: 'step-artifacts', 'aria-label': 'Artifacts' }, ...artifacts) : null);
}

/** One build: its header and the graph of its jobs. */
export function buildCard(build) {
  const names = new Map(build.jobs.map((job) => [job.id, job.name]));
  const stage = stages(build);
  const columns = [];
  for (const job of build.jobs) {
    const at = stage.get(job.id);
    while (columns.length <= at) columns.push([]);
    columns[at].push(job);
  }
  const trigger = build.by ? `${build.trigger} · ${build.by}` : build.trigger;
  const facts = [
    build.author, trigger,
    build.duration_ms != null ? formatDuration(build.duration_ms) : null,
  ].filter(Boolean).join(' · ');
  return el('section', { class: 'card build', 'data-build': String(build.id), 'aria-label': `Build ${build.id}` },
    el('div', { class: 'card-head' },
      el('h2', {}, `Build #${build.id} `, stateBadge(build.state)),
      el('span', { class: 'muted' }, `${build.branch} · ${shortCommit(build.commit)}`)),
    el('div', { class: 'build-subject' }, build.subject || '(no subject)'),
    el('div', { class: 'muted' }, facts),
    build.cancelled ? el('div', { class: 'step-message' }, `Cancelled: ${build.cancelled}`) : null,
    el('div', { class: 'graph', role: 'list' },
      ...columns.map((jobs, index) => el('div', { class: 'stage', role: 'listitem', 'aria-label': `Stage ${index + 1}` },
        ...jobs.map((job) => jobCard(job, names))))));
}

/** Shows `builds` (newest first) in `container`. */
export function showBuilds(container, builds) {
  setChildren(container, ...builds.map(buildCard));
}
