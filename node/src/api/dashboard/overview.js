// The overview (#/): the cluster, the queue, the jobs with their filters, and the
// watched repositories (each with a remove button that asks for a second click and an
// edit button, and a form that adds one with its forge settings or changes them).

import { el, emptyRow, setChildren, setText, syncList, table } from './dom.js';
import { STATES, STATE_LABELS } from './format.js';
import { ApiError, MAX_LIMIT, api, cluster, patch, post, remove } from './api.js';
import { JOB_HEADINGS, syncJobs } from './jobs.js';

const PAGE_SIZE = 50;

export function overviewView(route, refresh) {
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
    ['Node'], ['Address', 'col-opt'], ['Health'], ['Raft'], ['Runner slots'], ['Sandbox', 'col-opt'],
    ['Labels', 'col-opt'],
    ['Version', 'col-opt'],
  ]);
  const nodesCard = el('section', { class: 'card', 'aria-labelledby': 'nodes-title' },
    el('div', { class: 'card-head' }, el('h2', { id: 'nodes-title' }, 'Nodes')),
    nodes.wrapper);

  const repos = table('repos', [['Repository'], ['Forge'], ['Observer'], ['', 'repo-actions']]);
  const repoForm = makeRepoForm();
  const reposCard = el('section', { class: 'card', 'aria-labelledby': 'repos-title' },
    el('div', { class: 'card-head' }, el('h2', { id: 'repos-title' }, 'Repositories')),
    repos.wrapper, repoForm.form);

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
        el('td', { class: 'col-opt sandbox' }, sandboxCell(node)),
        el('td', { class: 'col-opt' }, (node.labels || []).length
          ? node.labels.map((label) => el('span', { class: 'chip' }, label))
          : el('span', { class: 'muted' }, '—')),
        el('td', { class: 'col-opt muted mono' }, node.version || '—'));
    });
  }

  // A runner's sandbox and how its limits hold; a runner without one is flagged.
  function sandboxCell(node) {
    if (!node.sandbox) return el('span', { class: 'muted' }, '—');
    const title = node.sandbox === 'none'
      ? "No sandbox: this runner's jobs can read the node's files and see its processes"
      : `Jobs run under bubblewrap; limits through ${node.limits || 'nothing'}`;
    return el('span', { class: `chip${node.sandbox === 'none' ? ' warn' : ''}`, title },
      node.limits ? `${node.sandbox} · ${node.limits}` : node.sandbox);
  }

  function renderRepos(status) {
    const list = status.repos || [];
    if (list.length === 0) {
      syncList(repos.body, ['none'], () => 'empty', () => '',
        () => emptyRow(4, 'No repository is watched: add one with eventide-node repo add PATH.'));
      return;
    }
    syncList(repos.body, list, (repo) => repo.id, (repo) => JSON.stringify(repo), (repo) =>
      el('tr', { dataset: { repoId: repo.id } },
        el('td', { class: 'mono repo-url' }, repo.url),
        el('td', { class: 'repo-forge' }, repo.forge
          ? [el('span', { class: 'chip' }, repo.forge),
            repo.forge_error
              ? el('span', { class: 'health dead', title: repo.forge_error }, `refused: ${repo.forge_error}`)
              : null]
          : el('span', { class: 'muted' }, '—')),
        el('td', { class: 'repo-health' }, repo.error
          ? el('span', { class: 'health dead', title: repo.error }, repo.error)
          : el('span', { class: 'health alive' }, 'OK')),
        el('td', { class: 'repo-actions' }, editControl(repo), removeControl(repo))));
  }

  // Watch a repository: its url and, optionally, its forge and the names of the secrets
  // it uses (values go in with `eventide-node secret set`, never through the page). An
  // Edit button fills it with a watched repository's settings and it saves them instead.
  function makeRepoForm() {
    const field = (name, label, attrs) => {
      const input = el('input', { id: `repo-${name}`, name, autocomplete: 'off', spellcheck: 'false', ...attrs });
      return [el('label', { for: `repo-${name}` }, label), input];
    };
    const forge = el('select', { id: 'repo-forge', name: 'forge' },
      el('option', { value: '' }, 'No forge'),
      ['github', 'gitlab', 'gitea'].map((name) => el('option', { value: name }, name)));
    const note = el('span', { class: 'repo-note muted', role: 'status', 'aria-live': 'polite' });
    const form = el('form', { class: 'filters repo-add', 'aria-label': 'Watch a repository' },
      field('url', 'Repository', { required: true, placeholder: 'https://github.com/acme/app.git' }),
      el('label', { for: 'repo-forge' }, 'Forge'), forge,
      field('token', 'Token secret', { placeholder: 'GITHUB_TOKEN' }),
      field('webhook_secret', 'Webhook secret', { placeholder: 'GITHUB_HOOK' }),
      field('branches', 'Branches', { placeholder: 'main,release/*' }),
      el('button', { type: 'submit', class: 'button repo-submit' }, 'Watch'), note);
    let editing = null;
    const submit = form.querySelector('.repo-submit');
    const stopEditing = () => {
      editing = null;
      form.elements.url.disabled = false;
      setText(submit, 'Watch');
      form.reset();
    };
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const value = (name) => form.elements[name].value.trim();
      const settings = {
        forge: value('forge') || null,
        token: value('token') || null,
        webhook_secret: value('webhook_secret') || null,
        branches: value('branches').split(',').map((b) => b.trim()).filter(Boolean),
      };
      setText(note, editing ? 'Saving…' : 'Adding…');
      try {
        if (editing) {
          const repo = await patch(`/api/v1/repos/${encodeURIComponent(editing)}`, settings);
          setText(note, `Settings of ${repo.url} saved.`);
        } else {
          const repo = await post('/api/v1/repos', { url: value('url'), settings });
          setText(note, `Watching ${repo.url}.`);
        }
        stopEditing();
        refresh();
      } catch (error) {
        setText(note, `Not saved: ${error.message}`);
      }
    });
    // Fills the form with repository `id`'s settings, as the API has them now.
    async function edit(id) {
      const repo = (await api('/api/v1/repos')).find((r) => r.id === id);
      if (!repo) return;
      editing = id;
      form.elements.url.value = repo.url;
      form.elements.url.disabled = true;
      form.elements.forge.value = repo.settings.forge || '';
      form.elements.token.value = repo.settings.token || '';
      form.elements.webhook_secret.value = repo.settings.webhook_secret || '';
      form.elements.branches.value = (repo.settings.branches || []).join(',');
      setText(submit, 'Save');
      setText(note, `Editing ${repo.url}; other settings stay as they are.`);
    }
    return { form, edit };
  }

  function editControl(repo) {
    const button = el('button', {
      type: 'button', class: 'button button-quiet repo-edit', title: `Edit the settings of ${repo.url}`,
    }, 'Edit');
    button.addEventListener('click', () => repoForm.edit(repo.id));
    return button;
  }

  // The first click arms the button, the second removes the repository (the API
  // cancels its queued and running jobs); an armed button disarms itself after a while.
  function removeControl(repo) {
    const button = el('button', {
      type: 'button', class: 'button button-quiet repo-remove',
      dataset: { focusKey: `remove-${repo.id}` }, title: `Stop watching ${repo.url}`,
    }, 'Remove');
    const note = el('span', { class: 'repo-note muted', role: 'status', 'aria-live': 'polite' });
    let armed = null;
    const disarm = () => {
      clearTimeout(armed);
      armed = null;
      setText(button, 'Remove');
      button.classList.replace('button-danger', 'button-quiet');
    };
    button.addEventListener('click', async () => {
      if (!armed) {
        armed = setTimeout(() => { disarm(); setText(note, ''); }, 10000);
        setText(button, 'Confirm removal');
        button.classList.replace('button-quiet', 'button-danger');
        setText(note, 'Its queued and running jobs will be cancelled.');
        return;
      }
      disarm();
      button.disabled = true;
      setText(note, 'Removing…');
      try {
        await remove(`/api/v1/repos/${encodeURIComponent(repo.id)}`);
        setText(note, 'Removed.');
        refresh();
      } catch (error) {
        button.disabled = false;
        setText(note, `Remove failed: ${error.message}`);
      }
    });
    return [button, note];
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
