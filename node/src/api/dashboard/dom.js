// DOM helpers. el() is the only way the dashboard makes elements: children that are
// not nodes become text nodes, so a string from the API is never parsed as HTML.

/** Creates an element; children that are not nodes become text nodes. */
export function el(tag, attrs, ...children) {
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

export function setChildren(node, ...children) {
  node.replaceChildren();
  appendAll(node, children);
}

export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

/**
 * Makes `container`'s children the rendering of `items`, in order, keeping the element
 * of every item whose signature did not change (and so its focus and selection).
 */
export function syncList(container, items, keyOf, signatureOf, render) {
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

export function table(className, headings) {
  const body = el('tbody');
  const head = el('thead', {}, el('tr', {}, headings.map(([label, cls]) =>
    el('th', { scope: 'col', class: cls || null }, label))));
  const wrapper = el('div', { class: 'table-wrap' }, el('table', { class: className }, head, body));
  return { wrapper, body };
}

export function emptyRow(columns, text) {
  return el('tr', { class: 'empty' }, el('td', { colspan: columns }, text));
}
