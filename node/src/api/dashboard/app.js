// The Eventide dashboard. It reads the JSON API of the node that served it and polls it
// about once a second; a running job's output is streamed from the log endpoint.
//
// Views, chosen by the URL's hash:
//   #/                         the cluster, the queue and the jobs (?branch=&state=)
//   #/job/42                   one job: its fields, attempts, output, rerun and cancel
//   #/commit/<sha>             one commit: its builds as step graphs, every job
//
// Every string from the API reaches the page as a text node or an attribute value set
// through the DOM (see el()); nothing is ever parsed as HTML. Tables are updated in
// place, row by row, so that keyboard focus survives the updates.
//
// Modules: dom (elements, keyed tables), format (states, times), api (fetch, the latest
// status), jobs (the jobs table), overview, job, log (a job's output), commit, builds
// (a commit's step graphs).

import { el, setChildren, setText, syncList } from './dom.js';
import { api, cluster, setToken, whenTokenNeeded } from './api.js';
import { overviewView } from './overview.js';
import { jobView } from './job.js';
import { commitView } from './commit.js';

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;

function takeStatus(status) {
  cluster.status = status;
  cluster.names = new Map((status.nodes || []).map((node) => [node.id, node.name]));
  cluster.namesKey = JSON.stringify([...cluster.names]);
  const leader = document.getElementById('top-leader');
  setText(leader, status.leader ? status.leader.name : 'none');
  leader.classList.toggle('warn', !status.leader);
  setText(document.getElementById('top-term'), status.term);
  setText(document.getElementById('top-node'), status.node ? status.node.name : '—');
  renderBanners(status);
}

function renderBanners(status) {
  const banners = [];
  if (status.waiting) {
    banners.push({ level: 'info', text: `This node is not part of a cluster yet: ${status.waiting}` });
  } else if (!status.leader) {
    banners.push({ level: 'warn', text: 'No leader: the cluster is electing one or has lost its quorum. Results can be read, nothing new is dispatched.' });
  }
  for (const repo of status.repos || []) {
    if (repo.error) {
      banners.push({ level: 'error', title: `Repository ${repo.url}`, text: repo.error });
    }
  }
  syncList(
    document.getElementById('banners'),
    banners,
    (banner) => `${banner.level}:${banner.title || ''}:${banner.text}`,
    () => '',
    (banner) => el('div', { class: `banner banner-${banner.level}`, role: 'alert' },
      banner.title ? el('strong', {}, banner.title, ': ') : null, banner.text),
  );
}

function setConnection(ok, error) {
  const indicator = document.getElementById('conn');
  indicator.classList.toggle('conn-ok', ok);
  indicator.classList.toggle('conn-bad', !ok);
  setText(indicator, ok ? 'Live' : 'Offline, retrying');
  indicator.title = ok
    ? `Updated ${new Date().toLocaleTimeString()}`
    : `Cannot reach this node: ${error && error.message ? error.message : error}`;
}

// A cluster with a secret wants a token for writes (and, with --private-api, for
// reads): ask for it once; it is kept for this tab only (sessionStorage).
function askForToken(error) {
  const box = document.getElementById('auth');
  if (box.childElementCount) return;
  const input = el('input', {
    id: 'token-input',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'output of: eventide-node token',
  });
  const form = el('form', { class: 'token-form' },
    el('label', { for: 'token-input' }, 'API token'),
    input,
    el('button', { type: 'submit', class: 'button' }, 'Use token'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    setChildren(box);
    refresh();
  });
  setChildren(box, el('div', { class: 'banner banner-warn', role: 'alert' },
    el('strong', {}, 'This cluster wants an API token'), ` (${error.message}). `, form));
  input.focus();
}

function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const split = hash.indexOf('?');
  const path = split >= 0 ? hash.slice(0, split) : hash;
  const params = new URLSearchParams(split >= 0 ? hash.slice(split + 1) : '');
  let match = path.match(/^\/job\/(\d+)$/);
  if (match) return { name: 'job', id: match[1], params };
  match = path.match(/^\/commit\/([0-9a-fA-F]{4,64})$/);
  if (match) return { name: 'commit', sha: match[1].toLowerCase(), params };
  return { name: 'overview', params };
}

let view = null;
let timer = null;
let running = false;
let again = false;

function show() {
  if (view) view.dispose();
  const route = parseRoute();
  const make = { job: jobView, commit: commitView, overview: overviewView }[route.name];
  view = make(route, refresh);
  setChildren(document.getElementById('view'), view.root);
  refresh();
}

async function refresh() {
  if (running) {
    again = true;
    return;
  }
  running = true;
  clearTimeout(timer);
  const current = view;
  try {
    takeStatus(await api('/api/v1/status'));
    if (current === view) await current.update();
    setConnection(true);
  } catch (error) {
    setConnection(false, error);
  } finally {
    running = false;
    if (again) {
      again = false;
      refresh();
    } else {
      timer = setTimeout(refresh, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
    }
  }
}

whenTokenNeeded(askForToken);
window.addEventListener('hashchange', () => {
  show();
  document.getElementById('main').focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});
show();
