// fedisocial's pages work without this script; with it they act in place:
// relative times, the buttons of a post without a reload, "Load more" appending,
// the composer's character count and posting, blurhash placeholders, a lightbox
// for images, and new posts arriving live behind a "N new posts" bar.
"use strict";

(() => {
  const JSON_HEADERS = { Accept: "application/json" };

  // -- relative times ("5 min", "3 h", "2 d"; the exact time stays in the title) -------------
  const UNITS = [["y", 31536000], ["mo", 2592000], ["d", 86400], ["h", 3600], ["min", 60]];
  function relative(when) {
    const seconds = Math.max(0, (Date.now() - when.getTime()) / 1000);
    if (seconds < 45) return "now";
    for (const [unit, size] of UNITS) {
      if (seconds >= size) return `${Math.floor(seconds / size)} ${unit}`;
    }
    return "1 min";
  }
  function updateTimes(root) {
    for (const node of root.querySelectorAll("time[data-relative]")) {
      const when = new Date(node.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) node.textContent = relative(when);
    }
  }

  // -- blurhash placeholders (https://github.com/woltapp/blurhash: the format) ---------------
  const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
  function decode83(text) {
    let value = 0;
    for (const ch of text) value = value * 83 + DIGITS.indexOf(ch);
    return value;
  }
  function toLinear(value) {
    const v = value / 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  }
  function toSrgb(value) {
    const v = Math.max(0, Math.min(1, value));
    return Math.round((v <= 0.0031308 ? v * 12.92 : 1.055 * Math.pow(v, 1 / 2.4) - 0.055) * 255);
  }
  function signPow(value, exp) {
    return Math.sign(value) * Math.pow(Math.abs(value), exp);
  }
  function blurhashPixels(hash, width, height) {
    const size = decode83(hash[0]);
    const nx = (size % 9) + 1;
    const ny = Math.floor(size / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) return null;
    const maximum = (decode83(hash[1]) + 1) / 166;
    const colors = [];
    const dc = decode83(hash.slice(2, 6));
    colors.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
    for (let i = 1; i < nx * ny; i++) {
      const ac = decode83(hash.slice(4 + i * 2, 6 + i * 2));
      const q = [Math.floor(ac / 361), Math.floor(ac / 19) % 19, ac % 19];
      colors.push(q.map((c) => signPow((c - 9) / 9, 2) * maximum));
    }
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
            const color = colors[i + j * nx];
            r += color[0] * basis; g += color[1] * basis; b += color[2] * basis;
          }
        }
        const at = 4 * (x + y * width);
        pixels[at] = toSrgb(r); pixels[at + 1] = toSrgb(g); pixels[at + 2] = toSrgb(b); pixels[at + 3] = 255;
      }
    }
    return pixels;
  }
  function placeholders(root) {
    for (const img of root.querySelectorAll("img[data-blurhash]")) {
      if (img.complete && img.naturalWidth) continue;
      const pixels = blurhashPixels(img.dataset.blurhash, 32, 32);
      if (!pixels) continue;
      const canvas = document.createElement("canvas");
      canvas.width = 32; canvas.height = 32;
      canvas.getContext("2d").putImageData(new ImageData(pixels, 32, 32), 0, 0);
      img.style.backgroundImage = `url(${canvas.toDataURL()})`;
      img.classList.add("has-placeholder");
      img.addEventListener("load", () => img.classList.remove("has-placeholder"), { once: true });
    }
  }

  // -- the buttons of a post ----------------------------------------------------------------
  async function send(form) {
    const response = await fetch(form.action, { method: "POST", body: new FormData(form), headers: JSON_HEADERS });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `The server answered ${response.status}`);
    return body;
  }
  function showState(card, state) {
    const pairs = { favourite: ["favourited", "favourites_count"], reblog: ["reblogged", "reblogs_count"], bookmark: ["bookmarked", null] };
    for (const form of card.querySelectorAll("form.act[data-action]")) {
      const [flag, count] = pairs[form.dataset.action] || [];
      if (!flag || !(flag in state)) continue;
      const on = Boolean(state[flag]);
      const id = form.action.split("/statuses/")[1].split("/")[0];
      form.action = `/statuses/${id}/${on ? form.dataset.undo : form.dataset.action}`;
      form.querySelector("button").setAttribute("aria-pressed", String(on));
      const counter = form.querySelector(".count");
      if (counter && count) counter.textContent = state[count];
    }
  }
  function flash(card, message) {
    let note = card.querySelector(".post-error");
    if (!note) {
      note = document.createElement("p");
      note.className = "post-error";
      note.setAttribute("role", "alert");
      card.append(note);
    }
    note.textContent = message;
  }
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("act")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const card = form.closest(".post");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const state = await send(form);
      if (state.deleted) card.remove();
      else showState(card, state);
    } catch (error) {
      flash(card, error.message);
    } finally {
      button.disabled = false;
    }
  });

  // -- "Load more" --------------------------------------------------------------------------
  document.addEventListener("click", async (event) => {
    const link = event.target.closest && event.target.closest("a[data-load-more]");
    if (!link) return;
    event.preventDefault();
    link.textContent = "Loading…";
    const url = new URL(link.href, location.href);
    url.searchParams.set("fragment", "1");
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) { link.textContent = "Could not load more: try again"; return; }
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();
    enhance(holder);
    link.closest(".load-more").replaceWith(...holder.childNodes);
  });

  // -- the composer ---------------------------------------------------------------------------
  function setUpComposer(form) {
    const text = form.querySelector("textarea[name=text]");
    const counter = form.querySelector("[data-count]");
    const max = Number(form.dataset.maxChars);
    const message = form.querySelector("[data-message]");
    const count = () => {
      const left = max - [...text.value].length;
      counter.textContent = left >= 0 ? `${left} characters left` : `${-left} characters too many`;
      counter.classList.toggle("is-over", left < 0);
    };
    text.addEventListener("input", count);
    count();
    form.addEventListener("submit", async (event) => {
      if (event.defaultPrevented) return;
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      message.textContent = "Posting…";
      try {
        const body = await send(form);
        const replies = form.querySelector("[name=in_reply_to]") && document.querySelector(".thread-replies");
        const cards = replies || document.querySelector("[data-feed=home] [data-cards]");
        if (!cards || (!replies && form.querySelector("[name=in_reply_to]"))) { location.href = body.path; return; }
        const holder = document.createElement("div");
        holder.innerHTML = body.html || "";
        enhance(holder);
        if (replies) cards.append(...holder.childNodes);
        else cards.prepend(...holder.childNodes);
        form.reset();
        form.dispatchEvent(new CustomEvent("composer:posted"));
        form.querySelector("[name=idempotency_key]").value = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
        message.textContent = "Posted.";
        count();
      } catch (error) {
        message.textContent = error.message;
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- lightbox -----------------------------------------------------------------------------
  let lightbox = null;
  function openLightbox(link) {
    if (!lightbox) {
      lightbox = document.createElement("dialog");
      lightbox.className = "lightbox";
      lightbox.innerHTML = '<figure><img alt=""><figcaption></figcaption></figure><button type="button" class="lightbox-close">Close</button>';
      lightbox.addEventListener("click", (event) => { if (event.target === lightbox || event.target.closest(".lightbox-close")) lightbox.close(); });
      document.body.append(lightbox);
    }
    const img = lightbox.querySelector("img");
    img.src = link.href;
    img.alt = link.dataset.alt || "";
    lightbox.querySelector("figcaption").textContent = link.dataset.alt || "";
    lightbox.showModal();
  }
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[data-lightbox]");
    if (!link || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    openLightbox(link);
  });

  // -- new posts, live (server-sent events) -------------------------------------------------
  function live(feed) {
    const name = feed.dataset.feed;
    if (!window.EventSource || !name || document.querySelector("[data-paged]")) return;
    const bar = feed.querySelector(".new-posts");
    const button = bar && bar.querySelector("[data-show-new]");
    if (!button) return;
    let waiting = 0;
    const seen = new Set();
    const source = new EventSource(`/live?feed=${encodeURIComponent(name)}`);
    source.addEventListener("update", (event) => {
      const id = JSON.parse(event.data).id;
      if (seen.has(id) || document.getElementById(`post-${id}`)) return;
      seen.add(id);
      waiting += 1;
      button.textContent = waiting === 1 ? "Show 1 new post" : `Show ${waiting} new posts`;
      bar.hidden = false;
    });
    source.addEventListener("notification", (event) => {
      const badge = document.querySelector("[data-unread]");
      const count = JSON.parse(event.data).unread;
      if (!badge) return;
      badge.hidden = count === 0;
      badge.firstChild.textContent = count >= 40 ? "40+" : String(count);
    });
    button.addEventListener("click", async () => {
      const url = new URL(location.href);
      url.searchParams.set("fragment", "1");
      const response = await fetch(url, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const holder = document.createElement("div");
      holder.innerHTML = await response.text();
      enhance(holder);
      feed.querySelector("[data-cards]").replaceChildren(...holder.childNodes);
      waiting = 0;
      seen.clear();
      bar.hidden = true;
    });
  }

  function enhance(root) {
    updateTimes(root);
    placeholders(root);
  }

  document.addEventListener("DOMContentLoaded", () => {
    enhance(document);
    setInterval(() => updateTimes(document), 60000);
    for (const form of document.querySelectorAll("form.composer")) setUpComposer(form);
    for (const feed of document.querySelectorAll("[data-feed]")) live(feed);
  });
})();
