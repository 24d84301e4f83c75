// masto.js (the Mastodon API client of Elk and Phanpy) against a live fedisocial instance.
// Usage: node masto_client.mjs BASE_URL TOKEN PNG_PATH; prints one JSON object of what it saw.
import { readFile } from "node:fs/promises";
import { createRestAPIClient, createStreamingAPIClient } from "masto";

const [baseUrl, accessToken, picture] = process.argv.slice(2);
const masto = createRestAPIClient({ url: baseUrl, accessToken, timeout: 20000 });

const me = await masto.v1.accounts.verifyCredentials();
const instance = await masto.v2.instance.fetch();
const file = new Blob([await readFile(picture)], { type: "image/png" });
const media = await masto.v2.media.create({ file, description: "A test pattern from masto.js" });
const posted = await masto.v1.statuses.create({
  status: "Hello from masto.js #elk",
  mediaIds: [media.id],
  visibility: "public",
});
const texts = [];
for (const n of [1, 2, 3]) {
  await masto.v1.statuses.create({ status: `Paged post ${n}`, visibility: "unlisted" });
}
// the paginator follows the Link header (rel="next") page after page, as Elk's feed does
let pages = 0;
for await (const page of masto.v1.timelines.home.list({ limit: 2 })) {
  pages += 1;
  texts.push(...page.map((status) => status.content));
  if (pages >= 5) break;
}
const favourited = await masto.v1.statuses.$select(posted.id).favourite();
const context = await masto.v1.statuses.$select(posted.id).context.fetch();

// the user stream (a WebSocket, the token as its protocol, as Elk opens it) gets a new post
const streaming = createStreamingAPIClient({
  streamingApiUrl: instance.configuration.urls.streaming,
  accessToken,
  retry: false,
});
const subscription = streaming.user.subscribe();
const streamed = (async () => {
  for await (const event of subscription) {
    if (event.event === "update" && event.payload.content.includes("Streamed to masto.js")) {
      return event.payload.account.acct;
    }
  }
  return null;
})();
await new Promise((resolve) => setTimeout(resolve, 1000));
await masto.v1.statuses.create({ status: "Streamed to masto.js", visibility: "public" });
const timeout = new Promise((resolve) => setTimeout(() => resolve("timed out"), 20000));
const streamedBy = await Promise.race([streamed, timeout]);
subscription.unsubscribe();
streaming.close();
console.log(JSON.stringify({
  acct: me.acct,
  version: instance.version,
  media: { id: media.id, type: media.type, description: media.description, url: media.url },
  posted: { id: posted.id, attachments: posted.mediaAttachments.length, tags: posted.tags },
  pages,
  texts,
  favourited: favourited.favourited,
  favourites: favourited.favouritesCount,
  context: { ancestors: context.ancestors.length, descendants: context.descendants.length },
  streamedBy,
}));
