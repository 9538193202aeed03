// One commit (#/commit/<sha>): its builds as step graphs, every job that tested it, and
// a rerun button.

import { el, emptyRow, setText, syncList, table } from './dom.js';
import { STATES, STATE_LABELS, shortCommit } from './format.js';
import { MAX_LIMIT, api, post } from './api.js';
import { JOB_HEADINGS, syncJobs } from './jobs.js';
import { showBuilds } from './builds.js';

export function commitView(route, refresh) {
  const sha = route.sha;
  const title = el('h1', {}, 'Commit ', el('span', { class: 'mono' }, shortCommit(sha)));
  const full = el('div', { class: 'mono muted sha' }, sha);
  const counts = el('div', { class: 'counts' });
  const message = el('div', { class: 'action-message', role: 'status', 'aria-live': 'polite' });
  const rerun = el('button', { type: 'button', class: 'button', disabled: true }, 'Rerun commit');
  const meta = el('div', { class: 'muted' });
  const jobs = table('jobs', JOB_HEADINGS);
  const builds = el('div', { class: 'builds' });
  const root = el('div', { class: 'view-commit' },
    el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, 'Overview'), el('span', { 'aria-hidden': 'true' }, '/'), el('span', {}, `Commit ${shortCommit(sha)}`)),
    el('div', { class: 'page-head' },
      el('div', { class: 'page-title' }, title, counts),
      el('div', { class: 'actions' }, rerun)),
    full, meta, message, builds,
    el('section', { class: 'card', 'aria-labelledby': 'commit-jobs-title' },
      el('div', { class: 'card-head' }, el('h2', { id: 'commit-jobs-title' }, 'Jobs of this commit')),
      jobs.wrapper));

  let newest = null;
  rerun.addEventListener('click', async () => {
    if (!newest) return;
    rerun.disabled = true;
    message.className = 'action-message';
    setText(message, 'Rerun…');
    try {
      const created = await post('/api/v1/rerun', { commit: newest.commit, branch: newest.branch });
      setText(message, `Queued job #${created.id}.`);
      refresh();
    } catch (error) {
      message.className = 'action-message error';
      setText(message, `Rerun failed: ${error.message}`);
    } finally {
      rerun.disabled = false;
    }
  });

  let shownBuilds = '';
  async function update() {
    const list = await api(`/api/v1/jobs?commit=${encodeURIComponent(sha)}&limit=${MAX_LIMIT}`);
    const found = await api(`/api/v1/builds?commit=${encodeURIComponent(sha)}&limit=20`);
    // Redrawn only when something changed, so that focus and hover stay put.
    const signature = JSON.stringify(found);
    if (signature !== shownBuilds) {
      shownBuilds = signature;
      showBuilds(builds, found);
    }
    newest = list[0] || null;
    rerun.disabled = !newest;
    document.title = `Commit ${shortCommit(sha)} · Eventide`;
    const byState = new Map();
    for (const job of list) byState.set(job.state, (byState.get(job.state) || 0) + 1);
    const summary = STATES.filter((state) => byState.has(state)).map((state) => [state, byState.get(state)]);
    syncList(counts, summary, ([state]) => state, ([state, count]) => `${state}:${count}`,
      ([state, count]) => el('span', { class: `badge state-${state}` }, `${count} ${STATE_LABELS[state].toLowerCase()}`));
    const repos = [...new Set(list.map((job) => job.repo))];
    const branches = [...new Set(list.map((job) => job.branch))];
    setText(meta, list.length ? `${repos.join(', ')} · ${branches.length === 1 ? 'branch' : 'branches'} ${branches.join(', ')}` : '');
    if (list.length === 0) {
      syncList(jobs.body, ['none'], () => 'empty', () => '', () => emptyRow(JOB_HEADINGS.length, 'No job has tested this commit.'));
    } else {
      syncJobs(jobs.body, list);
    }
  }

  return { root, update, dispose() {} };
}
