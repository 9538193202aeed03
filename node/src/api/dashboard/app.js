// The Eventide dashboard. It reads the JSON API of the node that served it and polls it
// about once a second; a running job's output is streamed from the log endpoint.
//
// Views, chosen by the URL's hash:
//   #/                         the cluster, the queue and the jobs (?branch=&state=)
//   #/job/42                   one job: its fields, attempts, output, rerun and cancel
//   #/commit/<sha>             every job of one commit
//
// Every string from the API reaches the page as a text node or an attribute value set
// through the DOM (see el()); nothing is ever parsed as HTML. Tables are updated in
// place, row by row, so that keyboard focus survives the updates.
'use strict';

(() => {
  const POLL_MS = 1000;
  const HIDDEN_POLL_MS = 5000;
  const PAGE_SIZE = 50;
  const MAX_LIMIT = 1000;
  // The most output kept on a job page; the raw log link serves all of it.
  const LOG_KEEP = 1024 * 1024;
  const STATES = ['queued', 'running', 'passed', 'failed', 'timed_out', 'error', 'cancelled'];
  const STATE_LABELS = {
    queued: 'Queued', running: 'Running', passed: 'Passed', failed: 'Failed',
    timed_out: 'Timed out', error: 'Error', cancelled: 'Cancelled',
  };
  const FINAL = new Set(['passed', 'failed', 'timed_out', 'error', 'cancelled']);
  const ANSI = /\u001b\[[0-9;?]*[ -\/]*[@-~]/g;

  // ---- DOM helpers -------------------------------------------------------------------

  /** Creates an element; children that are not nodes become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    appendAll(node, children);
    return node;
  }

  function appendAll(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
  }

  function setChildren(node, ...children) {
    node.replaceChildren();
    appendAll(node, children);
  }

  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  /**
   * Makes `container`'s children the rendering of `items`, in order, keeping the element
   * of every item whose signature did not change (and so its focus and selection).
   */
  function syncList(container, items, keyOf, signatureOf, render) {
    const previous = container.eventideRows || new Map();
    const next = new Map();
    for (const item of items) {
      const key = String(keyOf(item));
      if (next.has(key)) continue;
      const signature = signatureOf(item);
      let entry = previous.get(key);
      if (!entry || entry.signature !== signature) {
        const element = render(item);
        element.eventideKeyed = true;
        if (entry) replaceKeepingFocus(entry.element, element);
        entry = { element, signature };
      }
      next.set(key, entry);
    }
    for (const [key, entry] of previous) {
      if (!next.has(key)) entry.element.remove();
    }
    for (const child of [...container.children]) {
      if (!child.eventideKeyed) child.remove();
    }
    let index = 0;
    for (const entry of next.values()) {
      const at = container.children[index];
      if (at !== entry.element) container.insertBefore(entry.element, at || null);
      index += 1;
    }
    container.eventideRows = next;
  }

  function replaceKeepingFocus(old, replacement) {
    const focused = document.activeElement;
    const focusKey = focused && old.contains(focused) ? focused.dataset.focusKey : null;
    if (old.parentNode) old.replaceWith(replacement);
    if (focusKey) {
      const target = replacement.querySelector(`[data-focus-key="${focusKey}"]`);
      if (target) target.focus();
    }
  }

  // ---- formatting --------------------------------------------------------------------

  function shortCommit(sha) {
    return String(sha || '').slice(0, 8);
  }

  function formatDuration(ms) {
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

  function jobDuration(job) {
    if (job.duration_ms !== null && job.duration_ms !== undefined) {
      return formatDuration(job.duration_ms);
    }
    if (job.state === 'running' && job.started_at) {
      return formatDuration(Math.max(0, Date.now() - job.started_at));
    }
    return '—';
  }

  function formatTime(ms) {
    if (!ms) return '—';
    const date = new Date(ms);
    if (date.toDateString() === new Date().toDateString()) {
      return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    }
    return date.toLocaleString([], {
      month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
    });
  }

  function isoTime(ms) {
    return ms ? new Date(ms).toISOString() : '';
  }

  function stateBadge(state) {
    const known = STATE_LABELS[state] ? state : 'unknown';
    return el('span', { class: `badge state-${known}` }, STATE_LABELS[state] || String(state));
  }

  // ---- API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options) {
    const response = await fetch(path, {
      cache: 'no-store',
      ...options,
      headers: { Accept: 'application/json', ...((options && options.headers) || {}) },
    });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === 'string' ? body.error : text;
      throw new ApiError(response.status, message || `HTTP ${response.status}`);
    }
    return body;
  }

  function post(path, body) {
    return api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
  }

  // ---- shared state: the latest status ----------------------------------------------

  const cluster = {
    status: null,
    names: new Map(),
    namesKey: '',
  };

  function nodeName(id) {
    if (!id) return '—';
    return cluster.names.get(id) || `node ${String(id).slice(0, 6)}`;
  }

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

  // ---- tables ------------------------------------------------------------------------

  function table(className, headings) {
    const body = el('tbody');
    const head = el('thead', {}, el('tr', {}, headings.map(([label, cls]) =>
      el('th', { scope: 'col', class: cls || null }, label))));
    const wrapper = el('div', { class: 'table-wrap' }, el('table', { class: className }, head, body));
    return { wrapper, body };
  }

  const JOB_HEADINGS = [
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

  /** The test counts parsed from a job's output, as a short cell. */
  function testCounts(summary) {
    if (!summary) return el('span', { class: 'muted' }, '—');
    const total = summary.passed + summary.failed;
    if (summary.failed > 0) {
      return el('span', { class: 'tests tests-failed', title: summary.failing.join('\n') || null },
        `${summary.failed} of ${total} failed`);
    }
    return el('span', { class: 'tests' }, `${summary.passed} passed`);
  }

  function syncJobs(body, jobs) {
    syncList(body, jobs, (job) => job.id, jobSignature, jobRow);
  }

  function emptyRow(columns, text) {
    return el('tr', { class: 'empty' }, el('td', { colspan: columns }, text));
  }

  // ---- overview ----------------------------------------------------------------------

  function overviewView(route) {
    const filter = { branch: route.params.get('branch') || '', state: route.params.get('state') || '' };
    let limit = PAGE_SIZE;
    const branches = new Set();

    const card = (label, value, note) => el('div', { class: 'stat' },
      el('div', { class: 'stat-label' }, label), value, note);
    const leaderValue = el('div', { class: 'stat-value', id: 'stat-leader' }, '…');
    const leaderNote = el('div', { class: 'stat-note' });
    const nodesValue = el('div', { class: 'stat-value' }, '…');
    const nodesNote = el('div', { class: 'stat-note' });
    const queued = el('div', { class: 'stat-value' }, '…');
    const running = el('div', { class: 'stat-value' }, '…');
    const finished = el('div', { class: 'stat-value' }, '…');
    const stats = el('section', { class: 'stats', 'aria-label': 'Cluster summary' },
      card('Leader', leaderValue, leaderNote),
      card('Nodes alive', nodesValue, nodesNote),
      card('Queued', queued, el('div', { class: 'stat-note' }, 'waiting for a runner')),
      card('Running', running, el('div', { class: 'stat-note' }, 'on runners now')),
      card('Finished', finished, el('div', { class: 'stat-note' }, 'with a final result')));

    const nodes = table('nodes', [
      ['Node'], ['Address', 'col-opt'], ['Health'], ['Raft'], ['Runner slots'], ['Labels', 'col-opt'],
      ['Version', 'col-opt'],
    ]);
    const nodesCard = el('section', { class: 'card', 'aria-labelledby': 'nodes-title' },
      el('div', { class: 'card-head' }, el('h2', { id: 'nodes-title' }, 'Nodes')),
      nodes.wrapper);

    const repos = table('repos', [['Repository'], ['Observer']]);
    const reposCard = el('section', { class: 'card', 'aria-labelledby': 'repos-title' },
      el('div', { class: 'card-head' }, el('h2', { id: 'repos-title' }, 'Repositories')),
      repos.wrapper);

    const branchInput = el('input', {
      type: 'search', id: 'filter-branch', list: 'branch-list', placeholder: 'All branches',
      autocomplete: 'off', spellcheck: 'false', value: filter.branch,
    });
    const branchList = el('datalist', { id: 'branch-list' });
    const stateSelect = el('select', { id: 'filter-state' },
      el('option', { value: '' }, 'All states'),
      STATES.map((state) => el('option', { value: state, selected: state === filter.state }, STATE_LABELS[state])));
    const clear = el('button', { type: 'button', class: 'button button-quiet' }, 'Clear');
    const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
      el('label', { for: 'filter-branch' }, 'Branch'), branchInput, branchList,
      el('label', { for: 'filter-state' }, 'State'), stateSelect, clear);
    const jobs = table('jobs', JOB_HEADINGS);
    const more = el('button', { type: 'button', class: 'button button-quiet', hidden: true }, 'Show more');
    const footer = el('div', { class: 'card-foot muted' });
    const jobsCard = el('section', { class: 'card', 'aria-labelledby': 'jobs-title' },
      el('div', { class: 'card-head' }, el('h2', { id: 'jobs-title' }, 'Jobs'), form),
      jobs.wrapper, el('div', { class: 'card-foot-row' }, footer, more));

    const root = el('div', { class: 'view-overview' },
      el('h1', { class: 'visually-hidden' }, 'Cluster overview'), stats, nodesCard, jobsCard,
      reposCard);

    let typing = null;
    function applyFilter() {
      filter.branch = branchInput.value.trim();
      filter.state = stateSelect.value;
      limit = PAGE_SIZE;
      const params = new URLSearchParams();
      if (filter.branch) params.set('branch', filter.branch);
      if (filter.state) params.set('state', filter.state);
      const query = params.toString();
      history.replaceState(null, '', `#/${query ? `?${query}` : ''}`);
      refresh();
    }
    form.addEventListener('submit', (event) => { event.preventDefault(); applyFilter(); });
    branchInput.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(applyFilter, 300);
    });
    stateSelect.addEventListener('change', applyFilter);
    clear.addEventListener('click', () => {
      branchInput.value = '';
      stateSelect.value = '';
      applyFilter();
    });
    more.addEventListener('click', () => {
      limit = Math.min(MAX_LIMIT, limit + PAGE_SIZE);
      refresh();
    });

    function renderCluster(status) {
      setText(leaderValue, status.leader ? status.leader.name : 'none');
      leaderValue.classList.toggle('warn', !status.leader);
      setText(leaderNote, `term ${status.term} · ${status.voters} voters · auth ${status.auth}`);
      const all = status.nodes || [];
      const alive = all.filter((node) => node.alive).length;
      setText(nodesValue, `${alive} / ${all.length}`);
      nodesValue.classList.toggle('warn', alive < all.length);
      const slots = all.reduce((sum, node) => sum + (node.alive ? node.slots : 0), 0);
      const busy = all.reduce((sum, node) => sum + (node.alive ? node.busy : 0), 0);
      setText(nodesNote, `${busy} of ${slots} runner slots busy`);
      setText(queued, status.queue.queued);
      setText(running, status.queue.running);
      setText(finished, status.queue.finished);
      const self = status.node ? status.node.id : null;
      syncList(nodes.body, all, (node) => node.id, (node) => JSON.stringify([node, self]), (node) => {
        const share = node.slots > 0 ? Math.min(1, node.busy / node.slots) : 0;
        const bar = el('span', { class: 'slot-fill' });
        bar.style.width = `${Math.round(share * 100)}%`;
        return el('tr', { dataset: { nodeId: node.id, raft: node.raft, alive: node.alive } },
          el('td', { class: 'node-name' },
            el('span', {}, node.name),
            node.id === self ? el('span', { class: 'tag', title: 'This page is served by this node' }, 'this node') : null),
          el('td', { class: 'mono col-opt' }, node.addr),
          el('td', {}, el('span', { class: `health ${node.alive ? 'alive' : 'dead'}` }, node.alive ? 'Alive' : 'Dead')),
          el('td', {}, el('span', { class: `role role-${node.raft}` }, node.raft)),
          el('td', {}, el('span', { class: 'slots' },
            el('span', { class: 'slot-bar', 'aria-hidden': 'true' }, bar),
            el('span', { class: 'num' }, `${node.busy} / ${node.slots}`))),
          el('td', { class: 'col-opt' }, (node.labels || []).length
            ? node.labels.map((label) => el('span', { class: 'chip' }, label))
            : el('span', { class: 'muted' }, '—')),
          el('td', { class: 'col-opt muted mono' }, node.version || '—'));
      });
    }

    function renderRepos(status) {
      const list = status.repos || [];
      if (list.length === 0) {
        syncList(repos.body, ['none'], () => 'empty', () => '',
          () => emptyRow(2, 'No repository is watched: start a node with --repo URL.'));
        return;
      }
      syncList(repos.body, list, (repo) => repo.id, (repo) => JSON.stringify(repo), (repo) =>
        el('tr', { dataset: { repoId: repo.id } },
          el('td', { class: 'mono repo-url' }, repo.url),
          el('td', { class: 'repo-health' }, repo.error
            ? el('span', { class: 'health dead', title: repo.error }, repo.error)
            : el('span', { class: 'health alive' }, 'OK'))));
    }

    async function update() {
      renderCluster(cluster.status);
      renderRepos(cluster.status);
      const params = new URLSearchParams({ limit: String(limit) });
      if (filter.branch) params.set('branch', filter.branch);
      if (filter.state) params.set('state', filter.state);
      let list;
      try {
        list = await api(`/api/v1/jobs?${params}`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 400) {
          syncList(jobs.body, [null], () => 'error', () => error.message,
            () => emptyRow(JOB_HEADINGS.length, error.message));
          return;
        }
        throw error;
      }
      const before = branches.size;
      for (const job of list) branches.add(job.branch);
      if (branches.size !== before) {
        setChildren(branchList, [...branches].sort().map((branch) => el('option', { value: branch })));
      }
      if (list.length === 0) {
        const text = filter.branch || filter.state ? 'No job matches these filters.' : 'No jobs yet: push a commit to a watched repository.';
        syncList(jobs.body, [text], () => 'empty', (t) => t, (t) => emptyRow(JOB_HEADINGS.length, t));
      } else {
        syncJobs(jobs.body, list);
      }
      setText(footer, list.length >= limit ? `Newest ${list.length} jobs` : `${list.length} job${list.length === 1 ? '' : 's'}`);
      more.hidden = list.length < limit || limit >= MAX_LIMIT;
      const active = cluster.status.queue.running;
      document.title = active > 0 ? `(${active} running) Eventide` : 'Eventide';
    }

    return { root, update, dispose() { clearTimeout(typing); } };
  }

  // ---- a job's output ----------------------------------------------------------------

  /** The output of one job: streamed while it runs, fetched once when it is over. */
  class LogPane {
    constructor(jobId) {
      this.jobId = jobId;
      this.pre = el('pre', { class: 'log', id: 'job-log', tabindex: '0', 'aria-label': 'Job output' });
      this.status = el('span', { class: 'log-status muted', role: 'status' });
      this.attempt = null;
      this.text = '';
      this.omitted = false;
      this.controller = null;
      this.active = false;
      this.done = false;
      this.frame = 0;
    }

    sync(job) {
      if (this.attempt !== job.attempt) {
        // A new attempt (the first, or a retry after a lost runner) has its own output.
        this.stop();
        this.attempt = job.attempt;
        this.text = '';
        this.omitted = false;
        this.done = false;
      }
      if (job.state === 'queued') {
        setText(this.status, 'waiting for a runner');
        if (!this.text) setText(this.pre, 'Waiting for a runner to take this job…');
        return;
      }
      if (!this.active && !this.done) this.start(job);
    }

    async start(job) {
      const follow = job.state === 'running';
      const controller = new AbortController();
      this.controller = controller;
      this.active = true;
      setText(this.status, follow ? 'following live output' : 'loading');
      this.status.classList.toggle('live', follow);
      const path = `/api/v1/jobs/${encodeURIComponent(this.jobId)}/log?attempt=${encodeURIComponent(job.attempt)}${follow ? '&follow=true' : ''}`;
      let received = 0;
      // A retried request serves the output from its start: it replaces what is shown
      // once its first bytes arrive.
      const take = (chunk) => {
        if (!chunk) return;
        if (received === 0) {
          this.text = '';
          this.omitted = false;
        }
        received += chunk.length;
        this.append(chunk);
      };
      try {
        const response = await fetch(path, { cache: 'no-store', signal: controller.signal });
        if (!response.ok) throw new ApiError(response.status, `HTTP ${response.status}`);
        const decoder = new TextDecoder();
        if (response.body && response.body.getReader) {
          const reader = response.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            take(decoder.decode(value, { stream: true }));
          }
        } else {
          take(decoder.decode(new Uint8Array(await response.arrayBuffer()), { stream: true }));
        }
        take(decoder.decode());
        // A followed stream that ended with nothing (a runner that has not written yet)
        // is asked again on the next update.
        this.done = received > 0 || !follow;
        setText(this.status, this.done ? '' : 'waiting for output');
        if (this.done) this.render();
      } catch (error) {
        if (controller.signal.aborted) return;
        setText(this.status, `output unavailable: ${error.message}`);
      } finally {
        if (this.controller === controller) {
          this.active = false;
          this.status.classList.remove('live');
        }
      }
    }

    append(chunk) {
      this.text += chunk.replace(ANSI, '');
      if (this.text.length > LOG_KEEP) {
        const cut = this.text.indexOf('\n', this.text.length - LOG_KEEP);
        this.text = this.text.slice(cut >= 0 ? cut + 1 : this.text.length - LOG_KEEP);
        this.omitted = true;
      }
      if (!this.frame) {
        this.frame = requestAnimationFrame(() => {
          this.frame = 0;
          this.render();
        });
      }
    }

    render() {
      const pre = this.pre;
      const following = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      const head = this.omitted ? '… earlier output omitted here; the raw log has all of it\n' : '';
      const body = this.text || (this.done ? '(no output)' : '');
      setText(pre, head + body);
      if (following) pre.scrollTop = pre.scrollHeight;
    }

    stop() {
      if (this.controller) this.controller.abort();
      this.controller = null;
      this.active = false;
      if (this.frame) cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
  }

  // ---- one job -----------------------------------------------------------------------

  function jobView(route) {
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

  // ---- one commit --------------------------------------------------------------------

  function commitView(route) {
    const sha = route.sha;
    const title = el('h1', {}, 'Commit ', el('span', { class: 'mono' }, shortCommit(sha)));
    const full = el('div', { class: 'mono muted sha' }, sha);
    const counts = el('div', { class: 'counts' });
    const message = el('div', { class: 'action-message', role: 'status', 'aria-live': 'polite' });
    const rerun = el('button', { type: 'button', class: 'button', disabled: true }, 'Rerun commit');
    const meta = el('div', { class: 'muted' });
    const jobs = table('jobs', JOB_HEADINGS);
    const root = el('div', { class: 'view-commit' },
      el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, 'Overview'), el('span', { 'aria-hidden': 'true' }, '/'), el('span', {}, `Commit ${shortCommit(sha)}`)),
      el('div', { class: 'page-head' },
        el('div', { class: 'page-title' }, title, counts),
        el('div', { class: 'actions' }, rerun)),
      full, meta, message,
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

    async function update() {
      const list = await api(`/api/v1/jobs?commit=${encodeURIComponent(sha)}&limit=${MAX_LIMIT}`);
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

  // ---- routing and the update loop ---------------------------------------------------

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
    view = make(route);
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

  window.addEventListener('hashchange', () => {
    show();
    document.getElementById('main').focus({ preventScroll: true });
    window.scrollTo(0, 0);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });
  show();
})();
