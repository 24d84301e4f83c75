// masto.js's grouped notifications (masto.v2.notifications, as Elk and Phanpy list them)
// against a live fedisocial instance. Usage: node masto_grouped.mjs BASE_URL ALICE CAROL DAVE
// (three tokens); carol and dave like a post of alice's and follow her; prints what alice saw.
import { createRestAPIClient } from "masto";

const [url, ...tokens] = process.argv.slice(2);
const [alice, carol, dave] = tokens.map((accessToken) =>
  createRestAPIClient({ url, accessToken, timeout: 20000 }));

const me = await alice.v1.accounts.verifyCredentials();
const posted = await alice.v1.statuses.create({ status: "Like me", visibility: "public" });
for (const other of [carol, dave]) {
  await other.v1.statuses.$select(posted.id).favourite();
  await other.v1.accounts.$select(me.id).follow();
}

const groups = [];
const statusIds = [];
const accounts = new Set();
for await (const page of alice.v2.notifications.list({ limit: 40 })) {
  for (const group of page.notificationGroups) {
    groups.push([group.type, group.notificationsCount, group.sampleAccountIds.length]);
    if (group.statusId) statusIds.push(group.statusId);
  }
  for (const account of page.accounts) accounts.add(account.acct);
  break;
}
const [follows] = (await alice.v2.notifications.list()).notificationGroups;
const shown = await alice.v2.notifications.$select(follows.groupKey).fetch();
const ofGroup = await alice.v2.notifications.$select(follows.groupKey).accounts.fetch();
const unread = await alice.v2.notifications.unreadCount.fetch();
console.log(JSON.stringify({
  posted: posted.id,
  groups,
  statusIds,
  accounts: [...accounts],
  shown: shown.notificationGroups[0].notificationsCount,
  accountsOfGroup: ofGroup.map((account) => account.acct),
  unread: unread.count,
}));
