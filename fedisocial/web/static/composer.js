// The composer's images (templates/_composer.html), on top of what app.js does (the count,
// posting in place). Without this script the form still posts its text, the drafts ticked
// and one new image; with it: "Add image" uploads at once, "Generate" asks the studio for an
// image and shows its progress, then a preview with its alt text to keep or discard; the
// chosen images (at most four) show as thumbnails with their alt text and a Remove button.
// It calls the studio API (fedisocial/web/studio.py) with the page's session and its CSRF
// value in X-CSRF-Token. Alt text edited here is saved on the draft, and sent with the post.
// Drafting help (fedisocial/web/drafting.py): "Help me write this" shows suggestions in the
// [data-assist] slot, labeled "AI suggestion" (a model's) or "Suggestion" (offline hints), each
// with a button that puts it in the draft (a rewrite can be undone); "Suggest alt text" fills an
// image's alt text for the author to edit. Nothing is posted or saved until the author acts.
"use strict";

(() => {
  const POLL_MS = 1000;
  const MAX_POLL_FAILURES = 30;

  function sentence(text) {
    const s = String(text || "").trim();
    if (!s) return s;
    const capital = s[0].toUpperCase() + s.slice(1);
    return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
  }

  /** Path and query only, of a URL on this site (an absolute one minted behind a proxy may
   * name the wrong scheme); anything else is refused. */
  function localPath(url) {
    const parsed = new URL(url, location.href);
    if (parsed.origin !== location.origin) throw new Error("not a URL of this site");
    return parsed.pathname + parsed.search;
  }

  /** Only http(s) URLs go into src. */
  function safeUrl(url) {
    try {
      const parsed = new URL(url, location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : "";
    } catch {
      return "";
    }
  }

  function setUp(form) {
    const csrf = form.dataset.csrf;
    const maxImages = Number(form.dataset.maxImages) || 4;
    const maxBytes = Number(form.dataset.maxBytes) || 0;
    const $ = (selector) => form.querySelector(selector);
    const chosen = $("[data-chosen]");
    const draftsBox = $("[data-drafts-box]");
    const drafts = $("[data-drafts]");
    const generated = $("[data-generated]");
    const template = $("[data-image-template]");
    const countNote = $("[data-images-count]");
    const file = $("[data-file]");
    const fileAlt = $("[data-file-alt]");
    const uploadButton = $("[data-upload]");
    const uploadMessage = $("[data-upload-message]");
    const prompt = $("[data-prompt]");
    const generateButton = $("[data-generate]");
    const generateMessage = $("[data-generate-message]");
    const vision = form.dataset.vision === "on";
    const language = $("[name=language]");
    const text = $("[name=text]");
    const cw = $("[name=cw]");
    const assist = $("[data-assist]");
    const assistAsk = $("[data-assist-ask]");
    const assistMessage = $("[data-assist-message]");

    async function api(method, url, body) {
      const headers = { Accept: "application/json", "X-CSRF-Token": csrf };
      const init = { method, credentials: "same-origin", headers };
      if (body instanceof FormData) init.body = body;
      else if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      let response;
      try {
        response = await fetch(url, init);
      } catch {
        const error = new Error("Could not reach the server: check your connection and try again.");
        error.transient = true;
        throw error;
      }
      if (response.status === 204) return {};
      const doc = await response.json().catch(() => null);
      if (response.ok && doc) return doc;
      let message = doc && typeof doc.error === "string" ? sentence(doc.error)
        : `The server answered with an error (HTTP ${response.status}).`;
      if (response.status === 401) message += " Reload the page to sign in again.";
      const error = new Error(message);
      error.transient = response.status >= 500;
      throw error;
    }

    const say = (node, text, isError = false) => {
      node.textContent = text;
      node.classList.toggle("is-error", isError);
    };
    const count = () => chosen.children.length;
    const room = () => maxImages - count();

    function refresh() {
      const n = count();
      countNote.textContent = n === 0 ? "" : `${n} of ${maxImages} images in this post.`;
      const full = room() <= 0;
      uploadButton.disabled = full;
      for (const box of drafts.querySelectorAll("[data-include]")) box.disabled = full;
      for (const keep of generated.querySelectorAll("[data-keep]")) keep.disabled = full;
      const left = drafts.children.length;
      draftsBox.hidden = left === 0;
      $("[data-drafts-count]").textContent = String(left);
    }

    /** Show an item as chosen (in the post), a draft (tick to add) or a preview (keep?). */
    function place(item, where) {
      const box = item.querySelector("[data-include]");
      box.checked = where === "chosen";
      box.closest("label").hidden = where !== "draft";
      item.querySelector("[data-keep]").hidden = where !== "preview";
      item.querySelector("[data-remove]").hidden = where !== "chosen";
      item.querySelector("[data-discard]").hidden = where === "chosen";
      ({ chosen, draft: drafts, preview: generated })[where].append(item);
      refresh();
    }

    /** An image item for the media document of the studio API (Studio.describe). */
    function itemFor(media) {
      const item = template.content.firstElementChild.cloneNode(true);
      const id = String(media.id);
      item.dataset.mediaId = id;
      const img = item.querySelector("img");
      img.src = safeUrl(media.thumbnail);
      const box = item.querySelector("[data-include]");
      box.value = id;
      const alt = item.querySelector("[data-alt]");
      alt.id = `composer-alt-${id}`;
      alt.name = `alt_${id}`;
      alt.value = media.description || "";
      alt.defaultValue = alt.value;
      item.querySelector(`label[for="composer-alt-ID"]`).htmlFor = alt.id;
      if (media.model) {
        const note = document.createElement("p");
        note.className = "composer-ai";
        note.textContent = `Made by AI · ${media.model}`;
        item.querySelector(".composer-image-body").prepend(note);
      }
      wire(item);
      return item;
    }

    function wire(item) {
      const id = item.dataset.mediaId;
      const alt = item.querySelector("[data-alt]");
      const message = item.querySelector("[data-image-message]");
      const buttons = item.querySelectorAll("button");
      alt.setAttribute("aria-describedby", message.id = `composer-alt-note-${id}`);
      const saveAlt = async () => {
        if (alt.value === alt.defaultValue) return;
        try {
          await api("PUT", `/api/studio/media/${id}`, { description: alt.value });
          alt.defaultValue = alt.value;
          say(message, alt.value.trim() ? "Alt text saved." : "Describe the image before you post it.", !alt.value.trim());
        } catch (error) {
          say(message, error.message, true);
        }
      };
      alt.addEventListener("change", saveAlt);
      const suggestAlt = item.querySelector("[data-suggest-alt]");
      suggestAlt.hidden = !vision;
      suggestAlt.addEventListener("click", async () => {
        suggestAlt.disabled = true;
        say(message, "Asking for a description…");
        try {
          const doc = await api("POST", `/api/v1/fedisocial/media/${id}/alt_text`, { language: language.value });
          alt.value = doc.description;
          const from = doc.source === "prompt" ? "From the prompt the image was made from" : `${doc.label} (${doc.model})`;
          say(message, `${from}: check it and edit it; it goes with your post, not before.`);
          alt.focus();
        } catch (error) {
          say(message, error.message, true);
        } finally {
          suggestAlt.disabled = false;
        }
      });
      item.querySelector("[data-include]").addEventListener("change", (event) => {
        if (event.target.checked && room() <= 0) {
          event.target.checked = false;
          say(message, `A post can carry at most ${maxImages} images.`, true);
          return;
        }
        place(item, event.target.checked ? "chosen" : "draft");
        item.querySelector("[data-remove]").focus();
      });
      item.querySelector("[data-keep]").addEventListener("click", async () => {
        if (room() <= 0) { say(message, `A post can carry at most ${maxImages} images.`, true); return; }
        await saveAlt();
        place(item, "chosen");
        item.querySelector("[data-remove]").focus();
        say(message, "In this post.");
      });
      item.querySelector("[data-remove]").addEventListener("click", () => {
        place(item, "draft");
        say(message, "Removed from the post; it waits with your unposted images.");
        item.querySelector("[data-include]").focus();
      });
      item.querySelector("[data-discard]").addEventListener("click", async () => {
        for (const button of buttons) button.disabled = true;
        try {
          await api("DELETE", `/api/studio/media/${id}`);
          item.remove();
          refresh();
          prompt.focus();
          say(generateMessage, "Image discarded.");
        } catch (error) {
          say(message, error.message, true);
          for (const button of buttons) button.disabled = false;
        }
      });
    }

    // -- uploading at once ----------------------------------------------------------------
    uploadButton.hidden = false;
    uploadButton.addEventListener("click", async () => {
      const chosenFile = file.files && file.files[0];
      if (!chosenFile) { say(uploadMessage, "Choose an image file first.", true); file.focus(); return; }
      if (maxBytes && chosenFile.size > maxBytes) {
        say(uploadMessage, `This file has ${(chosenFile.size / 1048576).toFixed(1)} MB; at most ${(maxBytes / 1048576).toFixed(1)} MB are allowed.`, true);
        return;
      }
      if (!fileAlt.value.trim()) {
        say(uploadMessage, "Describe the image for people who cannot see it: alt text is required.", true);
        fileAlt.focus();
        return;
      }
      if (room() <= 0) { say(uploadMessage, `A post can carry at most ${maxImages} images.`, true); return; }
      const body = new FormData();
      body.append("file", chosenFile);
      body.append("description", fileAlt.value);
      uploadButton.disabled = true;
      say(uploadMessage, "Uploading…");
      try {
        const media = await api("POST", "/api/studio/media", body);
        place(itemFor(media), "chosen");
        file.value = "";
        fileAlt.value = "";
        say(uploadMessage, "Added to the post.");
      } catch (error) {
        say(uploadMessage, error.message, true);
      } finally {
        uploadButton.disabled = room() <= 0;
      }
    });

    // -- generating -------------------------------------------------------------------------
    /** Wait for a generation (a pending item), then show its preview in its place. */
    function watch(pending, statusUrl) {
      const progress = pending.querySelector("[data-progress]");
      const since = Date.now();
      let failures = 0;
      const poll = async () => {
        let doc;
        try {
          doc = await api("GET", statusUrl);
        } catch (error) {
          failures += 1;
          if (error.transient && failures < MAX_POLL_FAILURES) { setTimeout(poll, POLL_MS * 2); return; }
          progress.textContent = `could not be checked: ${error.message}`;
          return;
        }
        failures = 0;
        if (doc.status === "done" && doc.media) {
          const item = itemFor(doc.media);
          pending.replaceWith(item);
          place(item, "preview");
          say(generateMessage, "Your image is ready: check its alt text, then keep or discard it.");
          item.querySelector("[data-alt]").focus();
          return;
        }
        if (doc.status === "failed" || doc.status === "done") {
          pending.classList.add("is-error");
          progress.textContent = `could not be made: ${sentence(doc.error || "the image is gone")}`;
          pending.querySelector(".composer-spinner").remove();
          say(generateMessage, "The image could not be made.", true);
          return;
        }
        const seconds = Math.round((Date.now() - since) / 1000);
        progress.textContent = doc.status === "queued" ? `is waiting its turn… ${seconds} s` : `is being made… ${seconds} s`;
        setTimeout(poll, POLL_MS);
      };
      poll();
    }

    function pendingItem(text) {
      const li = document.createElement("li");
      li.className = "composer-pending";
      const spinner = document.createElement("span");
      spinner.className = "composer-spinner";
      spinner.setAttribute("aria-hidden", "true");
      const words = document.createElement("span");
      const strong = document.createElement("strong");
      strong.textContent = text;
      const progress = document.createElement("span");
      progress.dataset.progress = "";
      progress.textContent = "is asked for…";
      words.append(strong, " ", progress);
      li.append(spinner, words);
      return li;
    }

    generateButton.hidden = false;
    generateButton.addEventListener("click", async () => {
      const text = prompt.value.trim();
      if (!text) { say(generateMessage, "Describe the image you want first.", true); prompt.focus(); return; }
      generateButton.disabled = true;
      say(generateMessage, "Asking for the image…");
      const pending = pendingItem(text);
      generated.append(pending);
      try {
        const doc = await api("POST", "/api/studio/generations", { prompt: text });
        pending.dataset.generation = String(doc.id);
        say(generateMessage, "The image is being made; you can keep writing.");
        prompt.value = "";
        watch(pending, localPath(doc.status_url || `/api/studio/generations/${doc.id}`));
      } catch (error) {
        pending.remove();
        say(generateMessage, error.message, true);
      } finally {
        generateButton.disabled = false;
      }
    });

    // -- drafting help ----------------------------------------------------------------------
    const KINDS = { shorter: "Shorter", clearer: "Clearer", engaging: "More engaging" };
    let undoText = null;

    function el(tag, className, content) {
      const node = document.createElement(tag);
      if (className) node.className = className;
      if (content !== undefined) node.textContent = content;
      return node;
    }

    function button(label, name, onClick) {
      const node = el("button", "", label);
      node.type = "button";
      if (name) node.setAttribute("aria-label", name);
      node.addEventListener("click", onClick);
      return node;
    }

    /** Put text in the draft as if typed (the count follows). */
    function setText(value) {
      text.value = value;
      text.dispatchEvent(new Event("input", { bubbles: true }));
    }

    function useRewrite(rewrite) {
      undoText = text.value;
      setText(rewrite.text);
      const undo = button("Undo", "Undo: put back your own text", () => {
        if (undoText !== null) setText(undoText);
        undoText = null;
        say(assistMessage, "Your own text is back.");
        text.focus();
      });
      assistMessage.replaceChildren(`${KINDS[rewrite.kind] || "The"} text is in your draft; edit it as you like. `, undo);
      assistMessage.classList.remove("is-error");
      text.focus();
    }

    function addHashtag(tag) {
      const words = text.value.split(/\s+/).map((word) => word.toLowerCase());
      if (!words.includes(`#${tag.toLowerCase()}`)) setText(`${text.value.trimEnd()}${text.value.trim() ? " " : ""}#${tag}`);
      say(assistMessage, `#${tag} is in your draft.`);
    }

    function setWarning(warning) {
      cw.value = warning;
      cw.closest("details").open = true;
      say(assistMessage, `The content warning is now “${warning}”.`);
    }

    /** A labeled group of suggestions: "AI suggestion" for a model's, "Suggestion" for hints. */
    function group(label, title, items) {
      const section = el("section", "composer-assist-group");
      const head = el("p", "composer-assist-head");
      head.append(el("span", label === "Suggestion" ? "composer-assist-label" : "composer-assist-label is-ai", label), ` ${title}`);
      section.append(head, ...items);
      return section;
    }

    function tagButtons(tags, label) {
      const row = el("div", "composer-assist-tags");
      for (const tag of tags) row.append(button(`#${tag}`, `Add the hashtag #${tag} (${label})`, () => addHashtag(tag)));
      return row;
    }

    function warningButton(warning, label) {
      return button(`Use “${warning}”`, `Set the content warning to ${warning} (${label})`, () => setWarning(warning));
    }

    function showSuggestions(doc) {
      const parts = [];
      const ai = doc.ai;
      if (ai) {
        const rewrites = ai.rewrites.map((rewrite) => {
          const card = el("div", "composer-assist-rewrite");
          const kind = KINDS[rewrite.kind] || rewrite.kind;
          card.append(el("p", "composer-assist-kind", kind), el("p", "composer-assist-text", rewrite.text),
            button("Use this text", `Use the ${kind.toLowerCase()} text (AI suggestion)`, () => useRewrite(rewrite)));
          return card;
        });
        if (rewrites.length) parts.push(group(ai.label, `· rewrites by ${ai.model}`, rewrites));
        if (ai.hashtags.length) parts.push(group(ai.label, "· hashtags", [tagButtons(ai.hashtags, ai.label)]));
        if (ai.content_warning) parts.push(group(ai.label, "· content warning", [warningButton(ai.content_warning, ai.label)]));
      }
      const offered = new Set((ai ? ai.hashtags : []).map((tag) => tag.toLowerCase()));
      const own = doc.hashtags.filter((tag) => !offered.has(tag.toLowerCase()));
      if (own.length) parts.push(group("Suggestion", "· hashtags from your words", [tagButtons(own, "Suggestion")]));
      for (const hint of doc.hints) {
        const items = [el("p", "composer-assist-text", hint.message)];
        if (hint.content_warning) items.push(warningButton(hint.content_warning, "Suggestion"));
        parts.push(group("Suggestion", "", items));
      }
      if (doc.note) parts.unshift(el("p", "composer-hint", doc.note));
      if (!parts.length) parts.push(el("p", "composer-hint", "Nothing to suggest: your draft reads well."));
      const close = button("Close", "Close the suggestions", () => { assist.hidden = true; assist.replaceChildren(); assistAsk.focus(); });
      const bar = el("div", "composer-assist-top");
      bar.append(el("h3", "composer-assist-title", "Suggestions for your draft"), close);
      assist.replaceChildren(bar, ...parts);
      assist.hidden = false;
    }

    assistAsk.hidden = false;
    assistAsk.addEventListener("click", async () => {
      if (!text.value.trim()) { say(assistMessage, "Write a draft first, then ask for help with it.", true); text.focus(); return; }
      assistAsk.disabled = true;
      say(assistMessage, "Reading your draft…");
      try {
        const doc = await api("POST", "/api/v1/fedisocial/suggestions", { text: text.value, language: language.value, spoiler_text: cw.value });
        showSuggestions(doc);
        say(assistMessage, "Suggestions are below; nothing changes unless you pick one.");
      } catch (error) {
        say(assistMessage, error.message, true);
      } finally {
        assistAsk.disabled = false;
      }
    });

    // what the page was given: drafts to tick, and images still being made
    for (const item of [...drafts.children]) { wire(item); place(item, "draft"); }
    for (const pending of generated.querySelectorAll("[data-generation]")) {
      watch(pending, `/api/studio/generations/${encodeURIComponent(pending.dataset.generation)}`);
    }

    // posted (app.js): the chosen images went with the post
    form.addEventListener("composer:posted", () => {
      chosen.replaceChildren();
      say(uploadMessage, "");
      say(generateMessage, "");
      say(assistMessage, "");
      assist.hidden = true;
      assist.replaceChildren();
      undoText = null;
      refresh();
    });
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form.composer[data-csrf]")) setUp(form);
  });
})();
