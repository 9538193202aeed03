// A job's output: streamed from the log endpoint while the job runs, fetched once when
// it is over.

import { el, setText } from './dom.js';
import { ApiError, authHeaders } from './api.js';

// The most output kept on a job page; the raw log link serves all of it.
const LOG_KEEP = 1024 * 1024;
const ANSI = /\u001b\[[0-9;?]*[ -\/]*[@-~]/g;

/** The output of one job: streamed while it runs, fetched once when it is over. */
export class LogPane {
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
      const response = await fetch(path, {
        cache: 'no-store',
        signal: controller.signal,
        headers: authHeaders(),
      });
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
