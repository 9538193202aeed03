// One job (#/job/42): its fields, output, attempts, and the rerun and cancel buttons.

import { el, emptyRow, setChildren, setText, syncList, table } from './dom.js';
import { FINAL, STATE_LABELS, formatDuration, formatTime, isoTime, jobDuration, shortCommit } from './format.js';
import { ApiError, api, cluster, nodeName, post } from './api.js';
import { LogPane } from './log.js';

export function jobView(route, refresh) {
  const id = route.id;
  const title = el('h1', {}, `Job #${id}`);
  const badge = el('span', { class: 'badge' }, '…');
  const message = el('div', { class: 'action-message', role: 'status', 'aria-live': 'polite' });
  const rerun = el('button', { type: 'button', class: 'button', disabled: true }, 'Rerun');
  const cancel = el('button', { type: 'button', class: 'button button-danger', disabled: true }, 'Cancel');
  const fields = {};
  const field = (key, label) => {
    fields[key] = el('dd', { id: `job-${key}` }, '…');
    return el('div', { class: 'field' }, el('dt', {}, label), fields[key]);
  };
  const details = el('dl', { class: 'fields' },
    field('branch', 'Branch'), field('commit', 'Commit'), field('repo', 'Repository'),
    field('trigger', 'Trigger'), field('runner', 'Runner'), field('attempt', 'Attempt'),
    field('exit', 'Exit code'), field('duration', 'Duration'), field('created', 'Created'),
    field('started', 'Started'), field('finished', 'Finished'), field('labels', 'Labels'),
    field('tests', 'Tests'));
  const note = el('div', { class: 'job-message', hidden: true });
  const attempts = table('attempts', [
    ['Attempt'], ['Runner'], ['Started'], ['Ended', 'col-opt'], ['Duration', 'num'], ['Note'],
  ]);
  const log = new LogPane(id);
  const raw = el('a', { class: 'button button-quiet', href: `/api/v1/jobs/${encodeURIComponent(id)}/log`, target: '_blank', rel: 'noopener' }, 'Raw log');
  const root = el('div', { class: 'view-job' },
    el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, 'Overview'), el('span', { 'aria-hidden': 'true' }, '/'), el('span', {}, `Job #${id}`)),
    el('div', { class: 'page-head' },
      el('div', { class: 'page-title' }, title, badge),
      el('div', { class: 'actions' }, rerun, cancel)),
    message,
    note,
    el('section', { class: 'card', 'aria-label': 'Job details' }, details),
    el('section', { class: 'card', 'aria-labelledby': 'log-title' },
      el('div', { class: 'card-head' }, el('h2', { id: 'log-title' }, 'Output'), log.status, raw),
      log.pre),
    el('section', { class: 'card', 'aria-labelledby': 'attempts-title' },
      el('div', { class: 'card-head' }, el('h2', { id: 'attempts-title' }, 'Attempts')),
      attempts.wrapper));

  let job = null;
  let busy = false;
  const act = async (what, run) => {
    if (busy) return;
    busy = true;
    rerun.disabled = true;
    cancel.disabled = true;
    message.className = 'action-message';
    setText(message, `${what}…`);
    try {
      await run();
    } catch (error) {
      message.className = 'action-message error';
      setText(message, `${what} failed: ${error.message}`);
    } finally {
      busy = false;
      if (job) updateButtons(job);
    }
  };
  rerun.addEventListener('click', () => act('Rerun', async () => {
    const created = await post('/api/v1/rerun', { commit: job.commit, branch: job.branch });
    setText(message, '');
    location.hash = `#/job/${encodeURIComponent(created.id)}`;
  }));
  cancel.addEventListener('click', () => act('Cancel', async () => {
    await post(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
    setText(message, 'Cancelled.');
    refresh();
  }));

  function updateButtons(current) {
    rerun.disabled = busy;
    cancel.disabled = busy || FINAL.has(current.state);
    cancel.hidden = FINAL.has(current.state);
  }

  function setLink(dd, href, text, hint) {
    const signature = `${href}\n${text}`;
    if (dd.eventideSignature === signature) return;
    dd.eventideSignature = signature;
    setChildren(dd, el('a', { href, title: hint || null }, text));
  }

  async function update() {
    try {
      job = await api(`/api/v1/jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        setText(badge, 'Not found');
        badge.className = 'badge state-unknown';
        setText(message, `This node knows no job #${id}.`);
        return;
      }
      throw error;
    }
    const state = STATE_LABELS[job.state] ? job.state : 'unknown';
    setText(badge, STATE_LABELS[job.state] || job.state);
    badge.className = `badge badge-large state-${state}`;
    root.dataset.state = job.state;
    document.title = `Job #${job.id} · ${STATE_LABELS[job.state] || job.state} · Eventide`;
    setLink(fields.branch, `#/?branch=${encodeURIComponent(job.branch)}`, job.branch, 'Jobs of this branch');
    setLink(fields.commit, `#/commit/${encodeURIComponent(job.commit)}`, shortCommit(job.commit), `Every job of commit ${job.commit}`);
    fields.commit.classList.add('mono');
    setText(fields.repo, job.repo || job.repo_id);
    setText(fields.trigger, job.trigger);
    setText(fields.runner, nodeName(job.runner));
    setText(fields.attempt, job.attempt);
    setText(fields.exit, job.exit_code === null || job.exit_code === undefined ? '—' : job.exit_code);
    setText(fields.duration, jobDuration(job));
    setText(fields.created, formatTime(job.created_at));
    fields.created.title = isoTime(job.created_at);
    setText(fields.started, formatTime(job.started_at));
    fields.started.title = isoTime(job.started_at);
    setText(fields.finished, formatTime(job.finished_at));
    fields.finished.title = isoTime(job.finished_at);
    setText(fields.labels, (job.labels || []).join(', ') || '—');
    const summary = job.summary;
    setText(fields.tests, summary
      ? `${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped${summary.failing.length ? ` (failing: ${summary.failing.join(', ')})` : ''}`
      : '—');
    note.hidden = !job.message;
    note.className = `job-message ${job.state === 'error' || job.state === 'timed_out' ? 'error' : ''}`;
    setText(note, job.message || '');
    updateButtons(job);
    const rows = (job.attempts || []).slice().reverse();
    if (rows.length === 0) {
      syncList(attempts.body, ['none'], () => 'empty', () => '', () => emptyRow(6, 'Not started yet.'));
    } else {
      syncList(attempts.body, rows, (a) => a.attempt, (a) => JSON.stringify(a) + cluster.namesKey + (a.ended_at ? '' : Math.floor(Date.now() / 1000)), (a) => el('tr', {},
        el('td', {}, a.attempt),
        el('td', {}, nodeName(a.runner)),
        el('td', { title: isoTime(a.started_at) }, formatTime(a.started_at)),
        el('td', { class: 'col-opt', title: isoTime(a.ended_at) }, formatTime(a.ended_at)),
        el('td', { class: 'num' }, a.ended_at ? formatDuration(a.ended_at - a.started_at) : (a.attempt === job.attempt && job.state === 'running' ? formatDuration(Math.max(0, Date.now() - a.started_at)) : '—')),
        el('td', { class: 'muted' }, a.note || '')));
    }
    log.sync(job);
  }

  return { root, update, dispose() { log.stop(); } };
}
