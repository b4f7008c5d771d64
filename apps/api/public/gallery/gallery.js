import { thumbHashToDataURL } from './thumbhash.js';

// Relative URLs throughout: the page works under any path prefix the API is served at.
const KEY_STORAGE = 'imagegen.apiKey';
const $ = (id) => document.getElementById(id);
const grid = $('grid');
const message = $('message');
let keyRequired = false;
/** The API's limit on a topic, in characters as it counts them (code points; from config.json). */
let maxTopicLength = Infinity;

const apiKey = () => localStorage.getItem(KEY_STORAGE) ?? '';
const authHeaders = () => (keyRequired && apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});

function say(text, bad = false) {
  message.textContent = text;
  message.classList.toggle('bad', bad);
}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers ?? {}) } });
  if (res.status === 401) {
    // keys may have been made since the page read its config: from now on it sends the one saved
    keyRequired = true;
    $('key-button').hidden = false;
    showKeyPanel(true);
    throw new Error('An API key is needed (or the one given is not valid).');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    // the fields it names say what to change ("topic: must not contain control characters")
    const named = (Array.isArray(body.errors) ? body.errors : []).slice(0, 3).map((e) => `${e.path}: ${e.message}`);
    const what = body.detail ?? body.title ?? `The server answered ${res.status}`;
    throw new Error(named.length ? `${what} (${named.join('; ')})` : what);
  }
  return body;
}

function showKeyPanel(show) {
  $('key-panel').hidden = !show;
  if (show) $('key-form').elements.key.focus();
}

function placeholderUrl(hash) {
  try {
    const bytes = Uint8Array.from(atob(hash), (c) => c.charCodeAt(0));
    return thumbHashToDataURL(bytes);
  } catch {
    return undefined;
  }
}

/** One tile per generation, updated in place as its state changes. */
function renderTile(gen) {
  let tile = document.getElementById(`tile-${gen.id}`);
  if (!tile) {
    tile = document.createElement('li');
    tile.id = `tile-${gen.id}`;
    tile.className = 'tile';
    tile.innerHTML = '<a class="frame" target="_blank" rel="noopener"><img alt=""></a><div class="bar"><span></span></div><div class="meta"><p class="topic-text"></p><span class="status"></span></div>';
    tile.querySelector('.topic-text').textContent = gen.request.topic;
    tile.querySelector('.topic-text').title = gen.request.topic;
    tile.querySelector('img').alt = gen.request.topic;
    grid.prepend(tile);
  }
  $('empty').hidden = true;
  tile.className = `tile ${gen.status}`;
  tile.dataset.status = gen.status;
  tile.querySelector('.bar > span').style.width = `${gen.progress ?? 0}%`;
  tile.querySelector('.status').textContent = gen.status === 'failed' ? `failed: ${gen.error?.code ?? ''}` : gen.status === 'completed' ? gen.request.style.replace('_', ' ').toLowerCase() : gen.status === 'cancelled' ? 'cancelled' : `${gen.stage} · ${gen.progress}%`;
  const frame = tile.querySelector('a.frame');
  if (gen.request.size === 'PORTRAIT') frame.style.aspectRatio = '3 / 4';
  else if (gen.request.size === 'SQUARE') frame.style.aspectRatio = '1 / 1';
  const result = gen.result;
  if (result && !tile.dataset.shown) {
    tile.dataset.shown = '1';
    // the placeholder first, painted at once; the thumbnail fades in over it
    const ph = result.placeholder && placeholderUrl(result.placeholder);
    if (ph) frame.style.backgroundImage = `url("${ph}")`;
    frame.href = result.image.url;
    const thumbs = [...(result.thumbnails ?? [])].sort((a, b) => a.size - b.size);
    const thumb = thumbs.find((t) => t.size >= 400) ?? thumbs.at(-1);
    const img = tile.querySelector('img');
    img.addEventListener('load', () => img.classList.add('loaded'), { once: true });
    img.src = (thumb ?? result.image).url;
  }
  return tile;
}

/**
 * Live streams held at once. A browser opens at most six HTTP/1.1 connections to a host and a
 * stream holds one for as long as its generation runs: past this many, the submit button, the
 * reads and the thumbnails would queue behind the streams.
 */
const MAX_STREAMS = 2;
const POLL_MS = 2000;
/** Aborted when the list is loaded afresh (another key): the streams and polls of the old list stop. */
let watching = new AbortController();
const streaming = new Set();
/** Unfinished generations without a stream of their own, read every POLL_MS instead; the newest last. */
const waiting = [];
/** Those whose stream was cut before the end: polled from then on, so a failing stream is not opened again and again. */
const pollOnly = new Set();
/** The signal of the list the poll loop runs for (null: none runs). */
let pollingFor = null;

const unfinished = (gen) => gen.status === 'queued' || gen.status === 'active';

/** Keeps a tile current until its generation ends: a stream while one is free, else polling. */
function watch(id) {
  if (streaming.has(id) || waiting.includes(id)) return;
  waiting.push(id);
  startStreams();
}

function startStreams() {
  const { signal } = watching;
  while (streaming.size < MAX_STREAMS) {
    // the newest first: the one just submitted is the one being watched
    const at = waiting.findLastIndex((id) => !pollOnly.has(id));
    if (at < 0) break;
    const [id] = waiting.splice(at, 1);
    streaming.add(id);
    follow(id, signal).then((gen) => {
      streaming.delete(id);
      if (signal.aborted) return;
      // a stream cut before the end (a restart, a network change) leaves its tile to polling
      if (!gen || unfinished(gen)) {
        pollOnly.add(id);
        waiting.push(id);
      }
      startStreams();
    });
  }
  if (waiting.length > 0 && pollingFor !== signal) void poll(signal);
}

async function poll(signal) {
  pollingFor = signal;
  try {
    while (waiting.length > 0 && !signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      // one read at a time, so polling never takes more than one connection
      for (const id of [...waiting]) {
        if (signal.aborted) return;
        const gen = await api(`v1/generations/${encodeURIComponent(id)}`, { signal }).catch(() => undefined);
        if (!gen || signal.aborted) continue;
        renderTile(gen);
        // it may have moved to a stream meanwhile
        if (!unfinished(gen) && waiting.includes(id)) waiting.splice(waiting.indexOf(id), 1);
      }
    }
  } finally {
    if (pollingFor === signal) pollingFor = null;
  }
}

/** Stops every stream and poll (the list is being replaced). */
function unwatchAll() {
  watching.abort();
  watching = new AbortController();
  streaming.clear();
  waiting.length = 0;
  pollOnly.clear();
}

/**
 * Follows a generation's event stream (fetch, so the Authorization header can go along) until it
 * ends; answers the generation as last read (undefined when it could not be read).
 */
async function follow(id, signal) {
  try {
    const res = await fetch(`v1/generations/${encodeURIComponent(id)}/events`, { headers: { ...authHeaders(), Accept: 'text/event-stream' }, signal });
    if (!res.ok || !res.body) throw new Error(`events answered ${res.status}`);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        try {
          const gen = JSON.parse(data);
          if (gen && gen.id === id) renderTile(gen);
        } catch {
          /* not a generation: ignore */
        }
      }
    }
  } catch (err) {
    if (signal.aborted) return undefined;
    say(`Live progress stopped: ${err.message}`, true);
  }
  if (signal.aborted) return undefined;
  // the stream ends with the generation; one last read settles the tile whatever happened
  const gen = await api(`v1/generations/${encodeURIComponent(id)}`, { signal }).catch(() => undefined);
  if (!gen || signal.aborted) return undefined;
  renderTile(gen);
  return gen;
}

const RECENT = 24;

async function loadRecent() {
  // a page can come back short (it passed generations whose retention just ended): go on a few pages
  const recent = [];
  let cursor = null;
  for (let pages = 0; pages < 5 && recent.length < RECENT; pages++) {
    const page = await api(`v1/generations?limit=${RECENT - recent.length}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    recent.push(...page.data);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  unwatchAll();
  grid.textContent = '';
  for (const gen of [...recent].reverse()) {
    renderTile(gen);
    if (unfinished(gen)) watch(gen.id);
  }
  $('empty').hidden = recent.length > 0;
}

// the browser refuses the form while this says why (maxlength would count UTF-16 units instead)
const topicField = document.querySelector('#create textarea[name=topic]');
const checkTopicLength = () => {
  const length = [...topicField.value.trim()].length;
  topicField.setCustomValidity(length > maxTopicLength ? `Please use at most ${maxTopicLength} characters (this has ${length}).` : '');
};
topicField.addEventListener('input', checkTopicLength);

$('create').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const body = { topic: form.elements.topic.value.trim(), style: form.elements.style.value, size: form.elements.size.value };
  if (!body.topic) return say('Describe the image first.', true);
  $('submit').disabled = true;
  say('Submitting…');
  try {
    const gen = await api('v1/generations', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    renderTile(gen);
    say('Queued: watch it below.');
    form.elements.topic.value = '';
    if (unfinished(gen)) watch(gen.id);
  } catch (err) {
    say(err.message, true);
  } finally {
    $('submit').disabled = false;
  }
});

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  localStorage.setItem(KEY_STORAGE, event.currentTarget.elements.key.value.trim());
  event.currentTarget.reset();
  showKeyPanel(false);
  loadRecent().then(() => say('Key saved in this browser.'), (err) => say(err.message, true));
});
$('key-forget').addEventListener('click', () => {
  localStorage.removeItem(KEY_STORAGE);
  unwatchAll();
  grid.textContent = '';
  say('Key forgotten.');
});
$('key-button').addEventListener('click', () => showKeyPanel($('key-panel').hidden));

async function start() {
  const config = await fetch('gallery/config.json').then((r) => r.json());
  keyRequired = config.keyRequired === true;
  if (Number.isInteger(config.maxTopicLength)) maxTopicLength = config.maxTopicLength;
  checkTopicLength();
  $('key-button').hidden = !keyRequired;
  if (keyRequired && !apiKey()) {
    showKeyPanel(true);
    $('empty').hidden = false;
    return;
  }
  await loadRecent();
}
start().catch((err) => say(err.message, true));
