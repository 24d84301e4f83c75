/* The image studio page (templates/studio.html): ask for images, watch them
 * being made, review the drafts (alt text, which to include), upload your own,
 * publish up to four in one post. Plain JavaScript, no build step; the API it
 * calls is fedisocial/web/studio.py. Drafts are kept in localStorage, so a
 * reload loses nothing (images count against the hourly limit). */
"use strict";

(() => {
  const root = document.getElementById("studio");
  if (!root) return;

  const POLL_MS = 1000;
  const MAX_POLL_FAILURES = 30;
  const MAX_IMAGES = Number(root.dataset.maxImages) || 4;
  const MAX_BYTES = Number(root.dataset.maxBytes) || 0;
  const UPLOAD_TYPES = ["image/jpeg", "image/png", "image/webp"];
  const STORAGE_KEY = `fedisocial.studio.drafts.${root.dataset.user}`;
  const SAVED_FIELDS = ["kind", "prompt", "statusUrl", "status", "provider", "model", "media",
    "alt", "included"];

  const byId = (id) => document.getElementById(id);
  const ui = {
    generate: byId("studio-generate"),
    prompt: byId("studio-prompt"),
    generateButton: byId("studio-generate-button"),
    generateMessage: byId("studio-generate-message"),
    upload: byId("studio-upload"),
    file: byId("studio-file"),
    uploadAlt: byId("studio-upload-alt"),
    uploadButton: byId("studio-upload-button"),
    uploadMessage: byId("studio-upload-message"),
    drafts: byId("studio-drafts"),
    empty: byId("studio-empty"),
    publish: byId("studio-publish"),
    text: byId("studio-text"),
    cw: byId("studio-cw"),
    visibility: byId("studio-visibility"),
    publishButton: byId("studio-publish-button"),
    chosen: byId("studio-chosen"),
    publishMessage: byId("studio-publish-message"),
    announcer: byId("studio-announce"),
  };

  /** Every draft on the page, in the order it will be posted. */
  const drafts = new Map();
  let nextKey = 1;

  // -- small helpers -------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props);
    node.append(...children);
    return node;
  }

  function sentence(text) {
    const s = String(text || "").trim();
    if (!s) return s;
    const capital = s[0].toUpperCase() + s.slice(1);
    return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
  }

  /** Only http(s) URLs go into src and href. */
  function safeUrl(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "";
    } catch {
      return "";
    }
  }

  /** Path and query only: an absolute URL minted behind a proxy may name the wrong scheme. */
  function localPath(url) {
    const parsed = new URL(url, window.location.href);
    return parsed.pathname + parsed.search;
  }

  function megabytes(bytes) {
    return `${(bytes / 1048576).toFixed(1)} MB`;
  }

  function say(node, text, isError = false) {
    node.textContent = text;
    node.classList.toggle("is-error", isError);
  }

  function announce(text) {
    ui.announcer.textContent = "";
    window.setTimeout(() => { ui.announcer.textContent = text; }, 50);
  }

  class ApiError extends Error {
    constructor(message, transient) {
      super(message);
      this.transient = transient;
    }
  }

  /** fetch with our credentials; a 4xx/5xx becomes an ApiError with the server's words. */
  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new ApiError("Could not reach the server: check your connection and try again.", true);
    }
    let doc = null;
    try {
      doc = await response.json();
    } catch {
      doc = null;
    }
    if (response.ok && doc) return doc;
    let message = doc && typeof doc.error === "string"
      ? sentence(doc.error)
      : `The server answered with an error (HTTP ${response.status}).`;
    if (response.status === 401) message += " Reload the page to sign in again.";
    throw new ApiError(message, response.status >= 500 || response.ok);
  }

  // -- drafts: state, storage ----------------------------------------------------------

  const busy = (draft) => ["sending", "queued", "running"].includes(draft.status);
  const chosen = () => [...drafts.values()].filter((d) => d.status === "done" && d.included);

  function save() {
    const kept = [...drafts.values()].filter((d) => d.status !== "sending" && d.status !== "failed");
    const list = kept.map((d) => Object.fromEntries(SAVED_FIELDS.map((f) => [f, d[f]])));
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(list));
    } catch {
      // private browsing or a full store: the drafts live as long as this page
    }
  }

  function restore() {
    let list = [];
    try {
      list = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "[]");
    } catch {
      list = [];
    }
    if (!Array.isArray(list)) return;
    for (const saved of list) {
      const usable = saved && typeof saved === "object" && (saved.status === "done"
        ? saved.media && typeof saved.media.id === "number"
        : typeof saved.statusUrl === "string");
      if (usable) addDraft(saved);
    }
  }

  function addDraft(fields) {
    const draft = {
      kind: "generation", prompt: "", statusUrl: null, status: "queued", provider: null,
      model: null, media: null, error: null, alt: null, included: null,
      ...fields,
      key: String(nextKey++), since: Date.now(), failures: 0, timer: 0, ui: {},
    };
    drafts.set(draft.key, draft);
    ui.drafts.append(buildCard(draft));
    render(draft);
    refreshChoice();
    if (busy(draft) && draft.statusUrl) schedulePoll(draft);
    return draft;
  }

  function dropDraft(draft) {
    window.clearTimeout(draft.timer);
    draft.ui.card.remove();
    drafts.delete(draft.key);
  }

  function removeDraft(draft) {
    const cards = [...ui.drafts.children];
    const index = cards.indexOf(draft.ui.card);
    dropDraft(draft);
    save();
    refreshChoice();
    const next = ui.drafts.children[index] || ui.drafts.children[index - 1];
    (next ? next.querySelector(".studio-remove") : ui.prompt).focus();
    announce("Removed from the drafts.");
  }

  /** Take in a status document from the server (see Studio.status). */
  function applyStatus(draft, doc) {
    const before = draft.status;
    draft.status = doc.status;
    draft.provider = doc.provider || draft.provider;
    draft.model = doc.model || draft.model;
    if (doc.status === "done" && !doc.media) {
      draft.status = "failed";
      draft.error = "The server finished without an image. Try again.";
    } else if (doc.status === "done") {
      draft.media = doc.media;
      if (draft.alt === null) draft.alt = doc.media.description || draft.prompt;
      if (draft.included === null) draft.included = chosen().length < MAX_IMAGES;
    } else if (doc.status === "failed") {
      draft.error = sentence(doc.error || "The image could not be made");
    }
    if (draft.status !== before) {
      render(draft);
      save();
      refreshChoice();
      if (draft.status === "done") announce(`Image ready: “${draft.prompt}”. Check its alt text.`);
      if (draft.status === "failed") announce(`The image could not be made. ${draft.error}`);
    }
    if (busy(draft)) schedulePoll(draft);
  }

  function fail(draft, message) {
    applyStatus(draft, { status: "failed", error: message });
  }

  function schedulePoll(draft) {
    window.clearTimeout(draft.timer);
    const delay = Math.min(POLL_MS * (1 + draft.failures), 10000);
    draft.timer = window.setTimeout(() => poll(draft), delay);
  }

  async function poll(draft) {
    if (!drafts.has(draft.key)) return;
    try {
      const doc = await api("GET", draft.statusUrl);
      if (!drafts.has(draft.key)) return;
      draft.failures = 0;
      draft.trouble = null;
      applyStatus(draft, doc);
    } catch (err) {
      if (!drafts.has(draft.key)) return;
      draft.failures += 1;
      if (err.transient && draft.failures < MAX_POLL_FAILURES) {
        draft.trouble = "Lost contact with the server; trying again…";
        showProgress(draft);
        schedulePoll(draft);
      } else {
        fail(draft, err.message);
      }
    }
  }

  // -- drafts: cards -------------------------------------------------------------------

  function buildCard(draft) {
    const title = draft.kind === "upload" ? "Your image" : `“${draft.prompt}”`;
    const remove = el("button", { type: "button", className: "studio-remove" }, "Remove from draft");
    remove.addEventListener("click", () => removeDraft(draft));
    const frame = el("div", { className: "studio-frame" });
    const state = el("p", { className: "studio-state" });
    const details = el("div", { className: "studio-details" });
    const body = el("div", { className: "studio-card-body" },
      el("p", { className: "studio-prompt" }, title), state, details,
      el("div", { className: "studio-card-actions" }, remove));
    const card = el("li", { className: "studio-card" }, frame, body);
    draft.ui = { card, frame, state, details, remove };
    return card;
  }

  function render(draft) {
    const { card, frame, state, details } = draft.ui;
    card.dataset.status = draft.status;
    card.setAttribute("aria-busy", String(busy(draft)));
    frame.replaceChildren();
    details.replaceChildren();
    state.hidden = draft.status === "done";
    state.classList.toggle("is-error", draft.status === "failed");
    if (busy(draft)) {
      const spinner = el("span", { className: "studio-spinner" });
      spinner.setAttribute("aria-hidden", "true");
      frame.append(spinner);
      showProgress(draft);
    } else if (draft.status === "failed") {
      const mark = el("span", { className: "studio-failed-mark" }, "!");
      mark.setAttribute("aria-hidden", "true");
      frame.append(mark);
      state.textContent = draft.error;
    } else {
      frame.append(imageLink(draft));
      details.append(credit(draft), ...altField(draft), includeBox(draft));
    }
  }

  function showProgress(draft) {
    const seconds = Math.round((Date.now() - draft.since) / 1000);
    const waited = seconds >= 1 ? ` ${seconds} s` : "";
    const text = {
      sending: "Sending your request…",
      queued: "Queued: waiting for its turn…",
      running: `Being made by ${draft.model || "the image model"}…`,
    }[draft.status];
    draft.ui.state.textContent = draft.trouble || `${text}${waited}`;
  }

  function imageLink(draft) {
    const media = draft.media;
    const image = el("img", {
      src: safeUrl(media.thumbnail || media.url), alt: (draft.alt || "").trim(), decoding: "async",
    });
    if (media.width && media.height) {
      image.width = media.width;
      image.height = media.height;
    }
    draft.ui.image = image;
    const link = el("a", {
      href: safeUrl(media.url), target: "_blank", rel: "noopener", className: "studio-image-link",
      title: "Open the full-size image",
    }, image, el("span", { className: "studio-sr-only" }, " (full size, opens in a new tab)"));
    return link;
  }

  function credit(draft) {
    const media = draft.media;
    if (!media.model) {
      return el("p", { className: "studio-credit" },
        el("span", { className: "studio-badge studio-badge-own" }, "Upload"), " your own image");
    }
    const badge = el("span", { className: "studio-badge", title: "Made by AI: the post will say so" },
      "AI");
    const line = el("p", { className: "studio-credit" }, badge, " made by ",
      el("strong", {}, media.model), ` (${media.provider || draft.provider || "unknown provider"})`);
    if (media.revised_prompt && media.revised_prompt !== draft.prompt) {
      return el("div", {}, line,
        el("p", { className: "studio-revised" }, `The model’s reading of your prompt: ${media.revised_prompt}`));
    }
    return line;
  }

  function altField(draft) {
    const id = `studio-alt-${draft.key}`;
    const label = el("label", { htmlFor: id }, "Alt text ",
      el("span", { className: "studio-optional" }, "(read aloud to people who cannot see it)"));
    const area = el("textarea", { id, rows: 3, maxLength: 1500, value: draft.alt || "",
      className: "studio-alt" });
    area.addEventListener("input", () => {
      draft.alt = area.value;
      draft.ui.image.alt = area.value.trim();
      save();
    });
    draft.ui.alt = area;
    return [label, area];
  }

  function includeBox(draft) {
    const id = `studio-include-${draft.key}`;
    const box = el("input", { type: "checkbox", id, checked: Boolean(draft.included),
      className: "studio-include" });
    box.addEventListener("change", () => {
      draft.included = box.checked;
      save();
      refreshChoice();
    });
    draft.ui.include = box;
    return el("div", { className: "studio-check" }, box, el("label", { htmlFor: id }, "Include in post"));
  }

  /** The count of chosen images; at the limit, the other boxes are disabled. */
  function refreshChoice() {
    const count = chosen().length;
    const full = count >= MAX_IMAGES;
    for (const draft of drafts.values()) {
      const box = draft.ui.include;
      if (!box) continue;
      box.disabled = full && !draft.included;
      box.title = box.disabled ? `A post can carry at most ${MAX_IMAGES} images: untick one first` : "";
    }
    ui.chosen.textContent = count
      ? `${count} of ${MAX_IMAGES} images chosen${full ? ": the most one post can carry" : ""}.`
      : "No images chosen yet.";
    ui.empty.hidden = drafts.size > 0;
  }

  // -- the forms -----------------------------------------------------------------------

  async function onGenerate(event) {
    event.preventDefault();
    const prompt = ui.prompt.value.replace(/\s+/g, " ").trim();
    if (!prompt) {
      say(ui.generateMessage, "Describe the image first: the prompt is empty.", true);
      ui.prompt.focus();
      return;
    }
    say(ui.generateMessage, "");
    ui.generateButton.disabled = true;
    const draft = addDraft({ kind: "generation", prompt, status: "sending" });
    try {
      const doc = await api("POST", "/api/studio/generations", { prompt });
      draft.statusUrl = localPath(doc.status_url || `/api/studio/generations/${doc.id}`);
      draft.since = Date.now();
      applyStatus(draft, doc);
      say(ui.generateMessage, "Asked for it: it appears in the drafts below.");
    } catch (err) {
      say(ui.generateMessage, err.message, true);
      fail(draft, err.message);
    } finally {
      ui.generateButton.disabled = false;
    }
  }

  function uploadProblem(file) {
    if (!file) return "Choose an image file first.";
    if (file.type && !UPLOAD_TYPES.includes(file.type)) {
      return `${file.name} is not a JPEG, PNG or WebP image.`;
    }
    if (MAX_BYTES && file.size > MAX_BYTES) {
      return `${file.name} is ${megabytes(file.size)}; images can be at most ${megabytes(MAX_BYTES)}.`;
    }
    return null;
  }

  async function onUpload(event) {
    event.preventDefault();
    const file = ui.file.files && ui.file.files[0];
    const problem = uploadProblem(file);
    if (problem) {
      say(ui.uploadMessage, problem, true);
      ui.file.focus();
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("description", ui.uploadAlt.value.trim());
    ui.uploadButton.disabled = true;
    say(ui.uploadMessage, "Uploading…");
    try {
      const media = await api("POST", "/api/studio/media", form);
      const draft = addDraft({ kind: "upload", status: "done", media, alt: media.description || "",
        included: chosen().length < MAX_IMAGES });
      save();
      ui.upload.reset();
      say(ui.uploadMessage, `Added ${file.name} to the drafts.${draft.alt ? "" : " Write its alt text before you publish it."}`);
    } catch (err) {
      say(ui.uploadMessage, err.message, true);
    } finally {
      ui.uploadButton.disabled = false;
    }
  }

  async function onPublish(event) {
    event.preventDefault();
    const images = chosen();
    if (!images.length) {
      say(ui.publishMessage, "Choose at least one finished image: tick “Include in post” on a draft.", true);
      ui.publishMessage.focus();
      return;
    }
    const undescribed = images.find((d) => !(d.alt || "").trim());
    if (undescribed) {
      say(ui.publishMessage, "Every image needs alt text: describe what it shows.", true);
      undescribed.ui.alt.focus();
      return;
    }
    const body = {
      text: ui.text.value,
      media_ids: images.map((d) => d.media.id),
      descriptions: Object.fromEntries(images.map((d) => [String(d.media.id), d.alt.trim()])),
      visibility: ui.visibility.value,
      cw: ui.cw.value.trim() || null,
    };
    ui.publishButton.disabled = true;
    say(ui.publishMessage, "Publishing…");
    try {
      const post = await api("POST", "/api/studio/posts", body);
      images.forEach(dropDraft);
      save();
      refreshChoice();
      ui.publish.reset();
      const link = el("a", { href: safeUrl(post.url), className: "studio-post-link" }, "See your post");
      ui.publishMessage.classList.remove("is-error");
      ui.publishMessage.replaceChildren("Published! ", link);
      link.focus();
    } catch (err) {
      say(ui.publishMessage, err.message, true);
      ui.publishMessage.focus();
    } finally {
      ui.publishButton.disabled = false;
    }
  }

  ui.generate.addEventListener("submit", onGenerate);
  ui.upload.addEventListener("submit", onUpload);
  ui.publish.addEventListener("submit", onPublish);
  // Ctrl/Cmd+Enter in the prompt asks for the image, as in most chat boxes.
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) ui.generate.requestSubmit();
  });
  window.setInterval(() => {
    for (const draft of drafts.values()) if (busy(draft) && !draft.trouble) showProgress(draft);
  }, 1000);

  restore();
  refreshChoice();
})();
