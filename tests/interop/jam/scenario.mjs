// One step of a client's day, done with jmap-jam (npm) as its users write it.
// Usage: node scenario.mjs STEP; the server is named by JAM_SESSION_URL and
// JAM_TOKEN (a Bearer app token); NODE_EXTRA_CA_CERTS trusts its certificate.
// Each step checks what it can with node:assert and prints a JSON summary on
// stdout, which the Python test checks against the disk and the SMTP sink.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EventSource } from "eventsource";
import JamClient from "jmap-jam";

const jam = new JamClient({
  sessionUrl: process.env.JAM_SESSION_URL,
  bearerToken: process.env.JAM_TOKEN,
});
const session = await jam.session;
const accountId = await jam.getPrimaryAccount();

// The JMAP demo webmail's bodyProperties: no subParts.
const WEBMAIL_BODY_PROPERTIES = [
  "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "location",
];

async function roles() {
  const [{ list }] = await jam.api.Mailbox.get({ accountId, ids: null });
  return Object.fromEntries(list.filter((m) => m.role).map((m) => [m.role, m.id]));
}

function* walk(part) {
  yield part;
  for (const child of part.subParts ?? []) yield* walk(child);
}

const steps = {
  async session() {
    assert.ok(accountId);
    assert.ok(session.capabilities["urn:ietf:params:jmap:mail"]);
    assert.ok(session.capabilities["urn:ietf:params:jmap:submission"]);
    const boxes = await roles();
    const [query] = await jam.api.Mailbox.query({
      accountId,
      filter: { role: "inbox" },
      sort: [{ property: "name", isAscending: true }],
    });
    assert.deepEqual(query.ids, [boxes.inbox]);
    return { roles: Object.keys(boxes).sort(), apiUrl: session.apiUrl };
  },

  async listView() {
    const boxes = await roles();
    const [result] = await jam.requestMany((t) => {
      const query = t.Email.query({
        accountId,
        filter: { inMailbox: boxes.inbox },
        sort: [{ property: "receivedAt", isAscending: false }],
        collapseThreads: true,
        limit: 25,
        calculateTotal: true,
      });
      const emails = t.Email.get({
        accountId,
        ids: query.$ref("/ids"),
        properties: ["threadId", "subject", "from", "receivedAt", "preview", "bodyStructure"],
        bodyProperties: WEBMAIL_BODY_PROPERTIES,
      });
      const threads = t.Thread.get({ accountId, ids: emails.$ref("/list/*/threadId") });
      return { query, emails, threads };
    });
    const ids = result.query.ids;
    assert.equal(ids.length, 25);
    const list = result.emails.list;
    assert.deepEqual(list.map((e) => e.id), ids);
    const dates = list.map((e) => e.receivedAt);
    assert.deepEqual([...dates].sort().reverse(), dates);
    let multipart = 0;
    for (const email of list) {
      if (!email.bodyStructure.type.startsWith("multipart/")) continue;
      multipart += 1;
      const leaves = [...walk(email.bodyStructure)].filter((p) => !p.type.startsWith("multipart/"));
      assert.ok(leaves.length > 0, "a multipart with no children");
      for (const leaf of leaves) assert.ok(leaf.partId && leaf.blobId);
    }
    assert.ok(multipart > 0);
    const members = new Map(result.threads.list.map((t) => [t.id, t.emailIds]));
    for (const email of list) assert.ok(members.get(email.threadId).includes(email.id));
    return { total: result.query.total, subjects: list.map((e) => e.subject) };
  },

  async uploadImportDownload() {
    const message = readFileSync(process.env.JAM_MESSAGE);
    const attachment = readFileSync(process.env.JAM_ATTACHMENT);
    const boxes = await roles();
    const blob = new Blob([message], { type: "message/rfc822" });
    const upload = await jam.uploadBlob(accountId, blob);
    assert.equal(upload.size, message.length);
    const [imported] = await jam.api.Email.import({
      accountId,
      emails: { imp: { blobId: upload.blobId, mailboxIds: { [boxes.inbox]: true } } },
    });
    const emailId = imported.created.imp.id;
    const [{ list: [email] }] = await jam.api.Email.get({
      accountId,
      ids: [emailId],
      properties: ["blobId", "subject", "from", "attachments"],
    });
    const [part] = email.attachments;
    const file = await jam.downloadBlob({
      accountId,
      blobId: part.blobId,
      mimeType: part.type,
      fileName: part.name,
    });
    assert.equal(file.headers.get("content-type"), part.type);
    assert.ok(Buffer.from(await file.arrayBuffer()).equals(attachment));
    const whole = await jam.downloadBlob({
      accountId,
      blobId: email.blobId,
      mimeType: "message/rfc822",
      fileName: "message.eml",
    });
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(message));
    return { emailId, subject: email.subject, from: email.from, name: part.name };
  },

  async keywordsMovesChanges() {
    const boxes = await roles();
    const [query] = await jam.api.Email.query({
      accountId,
      filter: { inMailbox: boxes.inbox },
      limit: 3,
    });
    const [before] = await jam.api.Email.get({ accountId, ids: [] });
    const [boxesBefore] = await jam.api.Mailbox.get({ accountId, ids: [] });
    const [first, second, third] = query.ids;
    const [set] = await jam.api.Email.set({
      accountId,
      update: {
        [first]: { "keywords/$flagged": true },
        [second]: { mailboxIds: { [boxes.archive]: true } },
        [third]: { [`mailboxIds/${boxes.trash}`]: true, "keywords/$seen": null },
      },
    });
    assert.deepEqual(Object.keys(set.updated).sort(), [first, second, third].sort());
    const [changes] = await jam.api.Email.changes({ accountId, sinceState: before.state });
    assert.deepEqual([...changes.updated].sort(), [first, second, third].sort());
    const [boxChanges] = await jam.api.Mailbox.changes({
      accountId,
      sinceState: boxesBefore.state,
    });
    assert.ok(boxChanges.updated.includes(boxes.archive));
    const [{ list: [moved] }] = await jam.api.Email.get({
      accountId,
      ids: [second],
      properties: ["mailboxIds"],
    });
    assert.deepEqual(moved.mailboxIds, { [boxes.archive]: true });
    return { flagged: first, moved: second, trash: third };
  },

  async draftAndSend() {
    const boxes = await roles();
    const [{ list: identities }] = await jam.api.Identity.get({ accountId, ids: null });
    const me = identities.find((i) => i.email === process.env.JAM_ADDRESS);
    assert.ok(me, "no Identity for the configured address");
    const [result] = await jam.requestMany((t) => {
      const draft = t.Email.set({
        accountId,
        create: {
          draft: {
            mailboxIds: { [boxes.drafts]: true },
            keywords: { $draft: true },
            from: [{ name: "Alice", email: me.email }],
            to: [{ name: "Zoë", email: "zoe@example.no" }],
            subject: "Grüße vom Node-Client",
            bodyValues: { body: { value: "Hallo! Ein Gruß aus jmap-jam." } },
            textBody: [{ partId: "body", type: "text/plain" }],
          },
        },
      });
      const send = t.EmailSubmission.set({
        accountId,
        create: { send: { emailId: "#draft", identityId: me.id } },
        onSuccessUpdateEmail: {
          "#send": {
            [`mailboxIds/${boxes.drafts}`]: null,
            [`mailboxIds/${boxes.sent}`]: true,
            "keywords/$draft": null,
          },
        },
      });
      return { draft, send };
    });
    const emailId = result.draft.created.draft.id;
    // RFC 8621 §7.5: the implicit Email/set answers with the same call id, and
    // jam keeps the last response per id, so "send" holds the Email/set here.
    assert.deepEqual(result.send.updated, { [emailId]: null });
    const [{ list: submissions }] = await jam.api.EmailSubmission.get({ accountId, ids: null });
    assert.ok(submissions.some((s) => s.emailId === emailId && s.undoStatus === "final"));
    const [{ list: [sent] }] = await jam.api.Email.get({
      accountId,
      ids: [emailId],
      properties: ["mailboxIds", "keywords"],
    });
    assert.deepEqual(sent.mailboxIds, { [boxes.sent]: true });
    return { emailId };
  },

  async searchSnippets() {
    const filter = { text: "budget" };
    const [result] = await jam.requestMany((t) => {
      const query = t.Email.query({ accountId, filter, limit: 10 });
      const snippets = t.SearchSnippet.get({ accountId, filter, emailIds: query.$ref("/ids") });
      return { query, snippets };
    });
    assert.ok(result.query.ids.length > 0);
    assert.deepEqual(result.snippets.list.map((s) => s.emailId), result.query.ids);
    const marked = result.snippets.list.filter((s) =>
      `${s.subject ?? ""}${s.preview ?? ""}`.includes("<mark>"),
    );
    assert.ok(marked.length > 0);
    return { hits: result.query.ids.length, marked: marked.length };
  },

  async push() {
    // jam opens `new EventSource(url)`; Node has none, so the eventsource package
    // stands in, sending the Bearer token the way a Node user would add it.
    globalThis.EventSource = class extends EventSource {
      constructor(url, init) {
        super(url, {
          ...init,
          fetch: (input, options) =>
            fetch(input, {
              ...options,
              headers: { ...options.headers, Authorization: jam.authHeader },
            }),
        });
      }
    };
    const boxes = await roles();
    const [query] = await jam.api.Email.query({
      accountId,
      filter: { inMailbox: boxes.inbox },
      limit: 1,
    });
    const events = [];
    const source = await jam.connectEventSource({ types: "*", ping: 0, closeafter: "no" });
    const pushed = new Promise((resolve) => {
      source.addEventListener("state", (event) => {
        const data = JSON.parse(event.data);
        events.push(data);
        if (Object.values(data.changed).some((types) => types.Email)) resolve();
      });
    });
    await new Promise((resolve) => {
      source.onopen = resolve;
    });
    const states = [];
    let turn = 0;
    let got = false;
    while (!got && turn < 20) {
      const [set] = await jam.api.Email.set({
        accountId,
        update: { [query.ids[0]]: { "keywords/$flagged": turn % 2 === 0 ? true : null } },
      });
      states.push(set.newState);
      turn += 1;
      got = await Promise.race([
        pushed.then(() => true),
        new Promise((resolve) => setTimeout(() => resolve(false), 500)),
      ]);
    }
    source.close();
    assert.ok(got, "no push arrived");
    const emailStates = events.flatMap((e) => Object.values(e.changed).map((t) => t.Email));
    assert.ok(emailStates.some((s) => states.includes(s)));
    return { events: events.length };
  },
};

const step = steps[process.argv[2]];
if (!step) {
  console.error(`unknown step ${process.argv[2]}; steps: ${Object.keys(steps).join(", ")}`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(await step()));
