/* OneEdit chat page: plain JS over the service's JSON API (no build step, nothing external).
 *
 * Every text that comes from the API or the user is inserted with textContent / createTextNode,
 * never as HTML. Every request carries `Authorization: Bearer <token>`; the token lives in
 * sessionStorage (this tab only).
 */
"use strict";

(() => {
  const TOKEN_KEY = "oneedit.token";
  const EDIT_OPS = ["assert", "replace", "retract"];
  const FINAL = ["applied", "rejected", "needs_review", "unchanged", "failed", "rolled_back"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  const state = { token: null, me: null };

  // -- DOM helpers ---------------------------------------------------------------------------------
  const $ = (sel, root = document) => root.querySelector(sel);

  /** el("div", {class: "x", testid: "y", onclick: fn}, "text", childNode, [more], null) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "testid") node.setAttribute("data-testid", v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(node, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function randomKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  // -- the API ---------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.error = (body && body.error) || "Error";
      this.hint = (body && body.hint) || null;
      this.details = (body && body.details) || {};
    }
  }

  async function readError(res) {
    let body = null;
    try { body = await res.json(); } catch (_) { body = { message: `${res.status} ${res.statusText}` }; }
    return new ApiError(res.status, body);
  }

  async function api(method, path, body, token = state.token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (exc) {
      throw new ApiError(0, { error: "NetworkError", message: "The OneEdit service cannot be reached.",
                              hint: "Is `oneedit serve` still running?" });
    }
    if (!res.ok) {
      const err = await readError(res);
      if (res.status === 401 && token === state.token && state.me) expired(err);
      throw err;
    }
    return res.status === 204 ? null : res.json();
  }

  /** An error box: the API's message and hint (role="alert"). */
  function errorBox(err) {
    const msg = err instanceof ApiError || (err && err.message) ? err.message : String(err);
    return el("div", { class: "error", role: "alert", testid: "error", "data-error": err && err.error },
      el("strong", { class: "error-name" }, err && err.status ? `${err.status} ${err.error || ""}`.trim() : "Error"),
      el("p", { testid: "error-message" }, msg),
      err && err.hint ? el("p", { class: "hint", testid: "error-hint" }, err.hint) : null);
  }

  // -- login ---------------------------------------------------------------------------------------
  async function login(token) {
    const me = await api("GET", "/api/me", undefined, token);
    state.token = token;
    state.me = me;
    sessionStorage.setItem(TOKEN_KEY, token);
    showApp();
  }

  function logout(message) {
    state.token = null;
    state.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("#app").hidden = true;
    $("[data-testid=who]").hidden = true;
    $("#login").hidden = false;
    $("#token").value = "";
    clear($("#login-error"));
    if (message) $("#login-error").appendChild(message);
    // forget what the previous user saw
    for (const t of document.querySelectorAll("[data-testid=turn]")) t.remove();
    clear($("#history"));
    clear($("#review"));
    $("#token").focus();
  }

  function expired(err) {
    logout(errorBox(err));
  }

  function showApp() {
    const me = state.me;
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("[data-testid=who]").hidden = false;
    $("[data-testid=user-name]").textContent = me.name;
    const role = $("[data-testid=user-role]");
    role.textContent = me.role;
    role.className = `badge role-${me.role}`;
    $("#tab-review").hidden = !me.can_review;
    const input = $("#chat-input");
    input.disabled = false;
    agreement();
    selectTab("panel-chat");
    input.focus();
  }

  async function health() {
    const node = $("[data-testid=health]");
    try {
      const h = await api("GET", "/api/health", undefined, null);
      const model = { none: "no model", loading: "model loading…", ready: "model ready" }[h.model] || h.model;
      node.textContent = `${h.status === "ok" ? "online" : h.status} · ${model}`;
      node.dataset.model = h.model;
      if (h.model === "loading") setTimeout(health, 2000);
      else if (h.model === "ready") agreement();
    } catch (err) {
      node.textContent = "offline";
    }
  }

  // -- tabs ------------------------------------------------------------------------------------------
  function selectTab(panelId) {
    for (const tab of document.querySelectorAll("[role=tab]")) {
      const on = tab.dataset.panel === panelId;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      $(`#${tab.dataset.panel}`).hidden = !on;
    }
    if (panelId === "panel-history") loadHistory();
    if (panelId === "panel-review") loadReview();
  }

  function tabKeys(ev) {
    const tabs = [...document.querySelectorAll("[role=tab]")].filter((t) => !t.hidden);
    const i = tabs.indexOf(ev.target);
    if (i < 0) return;
    let j = null;
    if (ev.key === "ArrowRight") j = (i + 1) % tabs.length;
    else if (ev.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = tabs.length - 1;
    if (j === null) return;
    ev.preventDefault();
    tabs[j].focus();
    selectTab(tabs[j].dataset.panel);
  }

  // -- showing facts -------------------------------------------------------------------------------
  function mentionText(m) {
    if (!m) return "?";
    if (m.id) return m.label && m.label !== m.id ? `${m.label} (${m.id})` : m.id;
    if (m.ambiguous) return `“${m.ambiguous}” (ambiguous)`;
    if (m.new) return `“${m.new}” (new ${m.type || "entity"})`;
    return "?";
  }

  function factText(f) {
    if (!f) return "";
    return `(${f.subject}, ${f.relation}, ${f.object === null || f.object === undefined ? "*" : f.object})`;
  }

  function factList(facts, testid, cls) {
    return el("ul", { class: `facts ${cls || ""}`, testid },
      facts.map((f) => el("li", { class: "fact", testid: `${testid}-item` }, factText(f.fact || f),
        f.rule ? el("span", { class: "muted" }, ` — ${f.rule}`) : null)));
  }

  // -- the chat --------------------------------------------------------------------------------------
  const transcript = () => $("#transcript");

  /** One exchange: the user's line and everything the page learned about it. */
  class Turn {
    constructor(text) {
      this.text = text;
      this.body = el("div", { class: "turn-body" });
      this.node = el("article", { class: "turn", testid: "turn", "aria-label": `Request: ${text}` },
        el("p", { class: "said", testid: "turn-text" }, el("span", { class: "visually-hidden" }, "You: "), text),
        this.body);
      transcript().appendChild(this.node);
      this.scroll();
    }

    add(...nodes) {
      append(this.body, nodes);
      this.scroll();
      return nodes[0];
    }

    error(err) {
      return this.add(errorBox(err));
    }

    note(text, testid = "note") {
      return this.add(el("p", { class: "note", testid }, text));
    }

    scroll() {
      this.node.scrollIntoView({ block: "end", behavior: "smooth" });
    }
  }

  async function onChat(ev) {
    ev.preventDefault();
    const input = $("#chat-input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const turn = new Turn(text);
    try {
      await handleLine(turn, text);
    } catch (err) {
      turn.error(err);
    }
  }

  /** What the conversation is about (the last question or edit): a follow-up such as “Change it to
   * Cusco” or “and Chile’s?” is read against it by the server (`focus` in /api/parse and /api/ask). */
  let focus = null;

  function focusOf(intents) {
    for (const i of intents) {
      if (i.relation && i.subject && i.subject.id) return { subject: i.subject.id, relation: i.relation };
    }
    return null;
  }

  async function handleLine(turn, text) {
    const asked = focus;
    const parsed = await api("POST", "/api/parse", focus ? { text, focus } : { text });
    turn.add(renderParse(parsed));
    const intents = parsed.intents || [];
    focus = focusOf(intents) || focus;
    if (parsed.parser === "context") {
      // a follow-up: shown as read (above) and applied as the facts it names, after confirmation
      const edits = intents.filter((i) => EDIT_OPS.includes(i.op));
      if (edits.length) {
        await planEdit(turn, { triples: triplesOf(edits) }, edits);
        return;
      }
      if (intents.length) {
        await ask(turn, text, intents, asked);
        return;
      }
    }
    const edits = intents.filter((i) => EDIT_OPS.includes(i.op));
    const queries = intents.filter((i) => i.op === "query");
    if (!intents.length) {
      turn.note("I could not read an edit or a question in that. Try “The capital of France is Lyon” or "
        + "“What is the capital of France?”.");
      return;
    }
    if (edits.length) {
      await planEdit(turn, { text }, edits);
      if (queries.length) turn.note("This line also asks a question: ask it on its own once the edit is decided.");
      return;
    }
    if (queries.length) {
      await ask(turn, text, queries);
      return;
    }
    const ops = [...new Set(intents.map((i) => i.op))].join(", ");
    turn.note(`That reads as “${ops}”, which this page does not do: use the History tab to roll back edits.`);
  }

  function renderParse(parsed) {
    const box = el("details", { class: "parse", testid: "parse", open: true },
      el("summary", {}, `Read as ${parsed.intents.length} intent${parsed.intents.length === 1 ? "" : "s"}`
        + (parsed.parser === "context" ? " (a follow-up to the last turn)" : ` (${parsed.parser} parser)`)));
    const list = el("ol", { class: "intents" });
    for (const it of parsed.intents) {
      const li = el("li", { class: "intent", testid: "intent", "data-op": it.op },
        el("span", { class: `op op-${it.op}`, testid: "intent-op" }, it.op), " ");
      if (it.op === "undo") {
        li.appendChild(document.createTextNode(it.edit ? `edit #${it.edit}` : `the latest ${it.count} edit(s)`));
      } else {
        append(li, [
          el("span", { testid: "intent-subject", "data-id": it.subject && it.subject.id }, mentionText(it.subject)),
          " · ", el("code", { testid: "intent-relation" }, it.relation || "?"), " · ",
          el("span", { testid: "intent-object", "data-id": it.object && it.object.id },
            it.object ? mentionText(it.object) : (it.op === "query" ? "?" : "—")),
          el("span", { class: "muted" }, ` (confidence ${Number(it.confidence).toFixed(2)})`),
        ]);
        for (const [role, cands] of Object.entries(it.candidates || {})) {
          li.appendChild(el("div", { class: "muted candidates", testid: "intent-candidates" },
            `${role} could be: `, cands.map((c) => `${c.label} (${c.id})`).join(", ")));
        }
      }
      list.appendChild(li);
    }
    box.appendChild(list);
    if (parsed.notes && parsed.notes.length) {
      box.appendChild(el("ul", { class: "notes" }, parsed.notes.map((n) => el("li", {}, n))));
    }
    return box;
  }

  /** The parsed edit intents as structured facts (`POST /api/edits {triples}`). */
  function triplesOf(intents) {
    const name = (m) => (m ? m.id || m.ambiguous || m.new || null : null);
    return intents.map((i) => ({ op: i.op, subject: name(i.subject), relation: i.relation, object: name(i.object) }));
  }

  function methodChosen() {
    return $("#method").value || null;
  }

  // -- editing ----------------------------------------------------------------------------------------
  /** Dry-run `request` ({text} or {triples}), show the plan and offer Apply / Cancel. */
  async function planEdit(turn, request, intents) {
    let out;
    try {
      out = await api("POST", "/api/edits", { ...request, dry_run: true });
    } catch (err) {
      if (await offerChoice(turn, err, request, intents)) return;
      throw err;
    }
    const plan = out.plan || {};
    const box = turn.add(renderPlan(plan, out.status));
    const actions = el("div", { class: "actions", role: "group", "aria-label": "Apply this edit?" });
    box.appendChild(actions);
    const done = (label) => {
      clear(actions);
      actions.appendChild(el("span", { class: "muted", testid: "plan-choice" }, label));
    };
    if (plan.decision === "reject" || plan.decision === "noop") {
      actions.appendChild(el("span", { class: "muted" },
        plan.decision === "noop" ? "Nothing to apply." : "This edit would be refused."));
      return;
    }
    const replaced = (plan.conflicts || []).filter((c) => c.resolution === "replace").length;
    const question = plan.decision === "needs_review"
      ? "Send it to a curator for review?"
      : replaced ? `Apply it, replacing ${replaced} conflicting fact${replaced === 1 ? "" : "s"}?` : "Apply it?";
    actions.appendChild(el("span", { class: "question", testid: "plan-question" }, question));
    const applyLabel = plan.decision === "needs_review" ? "Send for review" : "Apply";
    const apply = el("button", { type: "button", testid: "apply", onclick: async () => {
      done("Submitting…");
      const id = await applyEdit(turn, request, plan);
      done(id ? `Submitted as edit #${id}.` : "Not submitted.");
    } }, applyLabel);
    const cancel = el("button", { type: "button", class: "secondary", testid: "cancel", onclick: () => {
      done("Cancelled: nothing was changed.");
      $("#chat-input").focus();
    } }, "Cancel");
    append(actions, [apply, cancel]);
    apply.focus();
  }

  function renderPlan(plan, status) {
    const box = el("section", { class: `plan decision-${plan.decision}`, testid: "plan",
                                "data-decision": plan.decision, "aria-label": "Edit plan" });
    const decision = {
      apply: "The edit can be applied.",
      needs_review: "The edit needs a curator's review.",
      reject: "The edit would be refused.",
      noop: "The KG already holds this: nothing to change.",
    }[plan.decision] || `Decision: ${plan.decision}`;
    box.appendChild(el("h3", { testid: "plan-decision" }, decision,
      status && status !== "planned" ? el("span", { class: "muted" }, ` (${status})`) : null));
    if (plan.reasons && plan.reasons.length) {
      box.appendChild(el("ul", { class: "reasons", testid: "plan-reasons" }, plan.reasons.map((r) => el("li", {}, r))));
    }
    const conflicts = plan.conflicts || [];
    if (conflicts.length) {
      box.appendChild(el("h4", {}, `Conflicts (${conflicts.length})`));
      box.appendChild(el("ul", { class: "conflicts", testid: "conflicts" }, conflicts.map((c) =>
        el("li", { class: "conflict", testid: "conflict", "data-kind": c.kind, "data-resolution": c.resolution },
          el("span", { class: `badge res-${c.resolution}` }, c.resolution), " ",
          el("span", { testid: "conflict-fact" }, factText(c.fact)), " ",
          el("span", { class: "muted" }, c.reason)))));
    }
    const diff = plan.kg_diff || { added: [], removed: [] };
    const grid = el("div", { class: "diff" });
    grid.appendChild(el("div", {}, el("h4", {}, `KG: added (${diff.added.length})`),
      factList(diff.added, "kg-added", "added")));
    grid.appendChild(el("div", {}, el("h4", {}, `KG: removed (${diff.removed.length})`),
      factList(diff.removed, "kg-removed", "removed")));
    box.appendChild(grid);
    const derived = plan.derived || [];
    if (derived.length) {
      box.appendChild(el("h4", {}, `Derived facts (${derived.length})`));
      box.appendChild(el("ul", { class: "facts", testid: "derived" }, derived.map((d) =>
        el("li", { class: d.op === "+" ? "added" : "removed", testid: "derived-item" },
          `${d.op} ${factText(d.fact)}`, el("span", { class: "muted" }, ` — ${d.rule}`)))));
    }
    if (plan.new_entities && plan.new_entities.length) {
      box.appendChild(el("p", { class: "muted", testid: "new-entities" }, "New entities: ",
        plan.new_entities.map((e) => `${e.label} (${e.type})`).join(", ")));
    }
    const failed = (plan.checks || []).filter((c) => !c.passed);
    if (failed.length) {
      box.appendChild(el("h4", {}, "Checks not passed"));
      box.appendChild(el("ul", { class: "checks", testid: "checks" },
        failed.map((c) => el("li", {}, `${c.name}: ${c.message}`))));
    }
    return box;
  }

  /** Details of the entities `ids` (for choice buttons), as far as they can be read. */
  async function describeEntities(ids) {
    return Promise.all(ids.map(async (id) => {
      try {
        const e = await api("GET", `/api/kg/entities/${encodeURIComponent(id)}`);
        return { id: e.id, label: e.label, type: e.type, description: e.description };
      } catch (_) {
        return { id, label: id };
      }
    }));
  }

  /** An ambiguous name: a 409 AmbiguousRequest (text) with `options`, or an UnknownEntityError
   * with candidate ids (structured facts). One button per option; the choice resubmits the request
   * as structured facts. True when handled. */
  async function offerChoice(turn, err, request, intents) {
    if (!(err instanceof ApiError)) return false;
    const d = err.details || {};
    let options = null;
    let mention = null;
    if (err.error === "AmbiguousRequest" && Array.isArray(d.options)) {
      options = d.options;
      mention = d.mention;
    } else if ((err.status === 409 || err.status === 400) && Array.isArray(d.candidates) && d.candidates.length
               && d.name) {
      options = await describeEntities(d.candidates.slice(0, 8));
      mention = d.name;
    }
    if (!options || !options.length) return false;
    const base = request.triples ? request.triples.map((t) => ({ ...t })) : triplesOf(intents);
    askChoice(turn, { mention, role: d.role || null, options, message: err.message }, base, intents);
    return true;
  }

  /** The first name of `triples` the parser found ambiguous and that is still unchosen, with the
   * parser's candidates; null when none. (Structured facts are resolved by exact name only, so an
   * ambiguous name left in them would become a new entity: every one is chosen here first.) */
  function nextAmbiguity(triples, intents) {
    for (let i = 0; i < intents.length && i < triples.length; i++) {
      for (const role of ["subject", "object"]) {
        const m = intents[i][role];
        const cands = (intents[i].candidates || {})[role] || [];
        if (m && m.ambiguous && cands.length && triples[i][role] === m.ambiguous) {
          return { mention: m.ambiguous, role, options: cands, index: i };
        }
      }
    }
    return null;
  }

  /** Buttons for the candidates of one ambiguous name; the choice goes into `base` (structured
   * facts), then the next ambiguous name is asked about, then the facts are planned (dry run). */
  function askChoice(turn, { mention, role, options, message, index }, base, intents) {
    const box = turn.add(el("section", { class: "choice", testid: "choice", "aria-label": `Which ${mention}?` },
      el("p", { testid: "choice-question" }, `Which “${mention}” do you mean${role ? ` (the ${role})` : ""}?`),
      message ? el("p", { class: "muted" }, message) : null));
    const group = el("div", { class: "actions options", role: "group", "aria-label": `Candidates for ${mention}` });
    const same = (a, b) => a !== null && a !== undefined && String(a).toLowerCase() === String(b).toLowerCase();
    const pick = async (opt) => {
      clear(group);
      group.appendChild(el("span", { class: "muted", testid: "choice-made" }, `You chose ${opt.label || opt.id} (${opt.id}).`));
      const triples = base.map((t, i) => {
        const out = { ...t };
        if (index !== undefined && i !== index) return out;
        for (const r of role ? [role] : ["subject", "object"]) if (same(out[r], mention)) out[r] = opt.id;
        return out;
      });
      // the server named the mention differently from the parser: its role's first ambiguous name
      if (role && !triples.some((t) => t[role] === opt.id)) {
        const i = intents.findIndex((it, k) => it[role] && it[role].ambiguous && triples[k] && triples[k][role] === it[role].ambiguous);
        if (i >= 0) triples[i][role] = opt.id;
      }
      const next = nextAmbiguity(triples, intents);
      if (next) {
        askChoice(turn, next, triples, intents);
        return;
      }
      try {
        await planEdit(turn, { triples }, intents);
      } catch (e) {
        turn.error(e);
      }
    };
    for (const opt of options) {
      group.appendChild(el("button", { type: "button", class: "option", testid: "choice-option",
                                       "data-id": opt.id, onclick: () => pick(opt) },
        el("strong", {}, opt.label || opt.id),
        opt.type ? el("span", { class: "muted" }, ` ${opt.type}`) : null,
        opt.description ? el("span", { class: "muted" }, ` — ${opt.description}`) : null,
        el("span", { class: "muted" }, ` (${opt.id})`)));
    }
    group.appendChild(el("button", { type: "button", class: "secondary", testid: "cancel", onclick: () => {
      clear(group);
      group.appendChild(el("span", { class: "muted", testid: "choice-made" }, "Cancelled: nothing was changed."));
    } }, "None of these"));
    box.appendChild(group);
    group.querySelector("button").focus();
  }

  async function applyEdit(turn, request, plan) {
    const body = { ...request, request_key: randomKey() };
    const method = methodChosen();
    if (method) body.method = method;
    let row;
    try {
      row = await api("POST", "/api/edits", body);
    } catch (err) {
      turn.error(err);
      return null;
    }
    const status = el("span", { class: `status status-${row.status}`, testid: "edit-status",
                                "data-status": row.status }, row.status);
    const line = turn.add(el("p", { class: "status-line", testid: "edit-progress", "data-edit-id": row.id,
                                    role: "status" },
      `Edit #${row.id}: `, status));
    const setStatus = (s) => {
      status.textContent = s;
      status.dataset.status = s;
      status.className = `status status-${s}`;
    };
    const final = await followEdit(row.id, (ev) => setStatus(ev.status), (how) => { line.dataset.via = how; });
    if (!final) {
      line.appendChild(el("span", { class: "muted" }, " (lost track of it: see History)"));
      return row.id;
    }
    setStatus(final.status);
    let entry = null;
    try {
      entry = await api("GET", `/api/edits/${row.id}`);
    } catch (err) {
      turn.error(err);
    }
    if (entry) setStatus(entry.status);
    showResult(turn, entry || final, plan);
    return row.id;
  }

  function showResult(turn, entry, plan) {
    const st = entry.status;
    const reasons = entry.reasons || (entry.plan && entry.plan.reasons) || [];
    if (st === "needs_review") turn.note("Waiting for a curator's review; nothing changed yet.", "result-note");
    else if (st === "unchanged") turn.note("The KG already held this; nothing changed.", "result-note");
    else if (st === "rejected") turn.note(`Refused: ${reasons.join(" ") || "see the plan."}`, "result-note");
    else if (st === "failed") {
      const e = entry.error || {};
      turn.note(`Failed: ${e.message || e.error || "the edit was undone."}`, "result-note");
    }
    if (st !== "applied") return;
    const me = entry.model_edit || null;
    if (me && me.answers && me.answers.length) turn.add(renderModelAnswers(me));
    else if (me && me.note) turn.note(`Model: ${me.note}`);
    else if (!me) turn.note("The KG changed; this workspace has no model to edit.");
    const p = entry.plan || plan || {};
    const req = (p.requested || [])[0];
    if (req) {
      const added = new Set(((p.kg_diff || {}).added || []).map((t) => `${t.subject}|${t.relation}|${t.object}`));
      turn.add(graphBox(req.subject, added));
    }
  }

  function renderModelAnswers(me) {
    return el("section", { class: "model-answers", testid: "model-answers", "aria-label": "The model's answers" },
      el("h4", {}, `The model's answers before and after (${me.method || "model"} edit ${me.id || ""})`),
      el("table", {},
        el("thead", {}, el("tr", {},
          ["Prompt", "Expected", "Before", "After", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, me.answers.map((a) => el("tr", { testid: "model-answer", class: a.ok ? "probe-ok" : "probe-miss", "data-ok": a.ok ? "true" : "false" },
          el("td", {}, a.prompt, a.split === "heldout" ? el("span", { class: "muted" }, " (held-out)") : null),
          el("td", { testid: "answer-expected" }, a.expected),
          el("td", { testid: "answer-before" }, a.before),
          el("td", { testid: "answer-after" }, a.after),
          el("td", {}, a.ok ? "✓" : "✗"))))));
  }

  /** Follow an edit to a final status: the SSE stream read with fetch() (EventSource cannot send
   * the token), falling back to polling. Resolves to the last event / row, or null. */
  async function followEdit(id, onStatus, via = () => {}) {
    let last = null;
    try {
      via("stream");
      last = await streamEdit(id, onStatus);
    } catch (err) {
      last = null;
    }
    if (!(last && FINAL.includes(last.status))) {
      via("poll");
      last = await pollEdit(id, onStatus);
    }
    if (last && last.status === "applied") agreement();
    return last;
  }

  /* How far the model agrees with the KG (a seeded sample of facts, GET /api/audit), in the top bar. */
  async function agreement() {
    const node = $("[data-testid=agreement]");
    if (!state.token || $("[data-testid=health]").dataset.model !== "ready") {
      node.textContent = "";
      return;
    }
    try {
      const a = await api("GET", "/api/audit?sample=300");
      const [lo, hi] = a.all.facts_agreeing_ci95;
      node.textContent = `model agrees with the KG on ${(100 * a.all.agreement).toFixed(1)}%`;
      node.title = `${a.all.facts} facts sampled: ${(100 * lo).toFixed(0)}–${(100 * hi).toFixed(0)}% of facts agree `
        + `(95% interval); edited facts ${a.edited.agreement === null ? "–" : (100 * a.edited.agreement).toFixed(1) + "%"}`;
      node.dataset.agreement = String(a.all.agreement);
    } catch (err) {
      node.textContent = "";
    }
  }

  async function streamEdit(id, onStatus) {
    const res = await fetch(`/api/edits/${id}/events`, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
      cache: "no-store",
    });
    if (!res.ok || !res.body) throw await readError(res);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    let event = "message";
    let data = [];
    let last = null;
    const dispatch = () => {
      const name = event;
      const text = data.join("\n");
      event = "message";
      data = [];
      if (name === "status" && text) {
        const ev = JSON.parse(text);
        last = ev;
        onStatus(ev);
        return FINAL.includes(ev.status);
      }
      return name === "shutdown";
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (value) buf += decoder.decode(value, { stream: true });
        for (;;) {
          const m = /\r\n|\n|\r/.exec(buf);
          if (!m) break;
          if (m[0] === "\r" && m.index === buf.length - 1 && !done) break; // maybe half of \r\n
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === "") {
            if (dispatch()) return last;
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            let val = colon < 0 ? "" : line.slice(colon + 1);
            if (val.startsWith(" ")) val = val.slice(1);
            if (field === "event") event = val;
            else if (field === "data") data.push(val);
          }
        }
        if (done) return last;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  async function pollEdit(id, onStatus, maxSeconds = 900) {
    const deadline = Date.now() + maxSeconds * 1000;
    let seen = null;
    while (Date.now() < deadline) {
      try {
        const row = await api("GET", `/api/edits/${id}`);
        if (row.status !== seen) {
          seen = row.status;
          onStatus({ edit: id, status: row.status });
        }
        if (FINAL.includes(row.status)) return row;
      } catch (err) {
        if (err.status && err.status !== 0 && err.status < 500) return null;
      }
      await new Promise((r) => setTimeout(r, 700));
    }
    return null;
  }

  // -- questions --------------------------------------------------------------------------------------
  async function ask(turn, text, queries, asked = null) {
    const out = await api("POST", "/api/ask", asked ? { text, focus: asked } : { text });
    for (const a of out.answers || []) turn.add(renderAnswer(a));
    const q = queries[0];
    const centre = (q.subject && q.subject.id) || (q.object && q.object.id);
    if (centre) turn.add(graphBox(centre, new Set()));
  }

  function kgText(a) {
    if (a.kind === "yes_no" || typeof a.kg === "boolean") return a.kg ? "yes" : "no";
    if (Array.isArray(a.kg)) return a.kg.length ? a.kg.join(", ") : "(nothing)";
    return a.kg === null || a.kg === undefined ? "(nothing)" : String(a.kg);
  }

  function renderAnswer(a) {
    const agree = a.agree === true ? "agree" : a.agree === false ? "disagree" : "n/a";
    const model = a.model === null || a.model === undefined ? "(no model answer)" : a.model;
    return el("section", { class: "answer", testid: "answer", "aria-label": `Answer: ${a.question || ""}` },
      el("h3", {}, a.question ? `${a.question}?`.replace(/\?\?$/, "?") : "Answer"),
      el("div", { class: "side-by-side" },
        el("div", { class: "side kg" }, el("h4", {}, "Knowledge graph"),
          el("p", { class: "value", testid: "answer-kg" }, kgText(a))),
        el("div", { class: "side model" }, el("h4", {}, "Model"),
          el("p", { class: "value", testid: "answer-model" }, model),
          a.model_prompt ? el("p", { class: "muted" }, `prompt: “${a.model_prompt}”`) : null)),
      el("p", { class: `agree agree-${agree}`, testid: "answer-agree", "data-agree": agree },
        agree === "agree" ? "The KG and the model agree."
          : agree === "disagree" ? "The KG and the model disagree." : "No comparison."),
      a.note ? el("p", { class: "muted", testid: "answer-note" }, a.note) : null);
  }

  // -- the graph picture --------------------------------------------------------------------------------
  function graphBox(entity, highlight) {
    const box = el("figure", { class: "graph", testid: "graph-box" });
    const caption = el("figcaption", {}, "Neighbourhood of ", el("code", {}, entity));
    box.appendChild(caption);
    const holder = el("div", { class: "graph-holder" }, el("p", { class: "muted" }, "Loading the graph…"));
    box.appendChild(holder);
    const load = async (id) => {
      try {
        const nb = await api("GET", `/api/kg/entities/${encodeURIComponent(id)}/neighbourhood?depth=1&limit=40`);
        clear(holder).appendChild(drawGraph(nb, highlight, load));
        clear(caption);
        append(caption, ["Neighbourhood of ", el("strong", {}, labelOf(nb, nb.center)),
          el("span", { class: "muted" },
            ` — ${nb.nodes.length} entities, ${nb.edges.length} facts${nb.truncated ? " (truncated)" : ""};`
            + " new facts in green; click an entity to centre on it")]);
      } catch (err) {
        clear(holder).appendChild(errorBox(err));
      }
    };
    load(entity);
    return box;
  }

  function labelOf(nb, id) {
    const n = nb.nodes.find((x) => x.id === id);
    return n ? n.label : id;
  }

  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#e15759", "#9c755f", "#bab0ac"];
  function colourOf(type) {
    let h = 0;
    for (const ch of String(type || "")) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }

  function shorten(s, n) {
    s = String(s);
    return s.length > n ? `${s.slice(0, n - 1)}…` : s;
  }

  /** Short strings joined on lines of at most `width` characters (a longer one is cut). */
  function packLines(parts, width) {
    const lines = [];
    for (const part of parts) {
      const cut = shorten(part, width);
      const last = lines.length ? lines[lines.length - 1] : null;
      if (last !== null && last.length + 2 + cut.length <= width) lines[lines.length - 1] = `${last}  ${cut}`;
      else lines.push(cut);
    }
    return lines;
  }

  /** A radial layout: the centre, each hop on its own ring, ordered by type then label. */
  function drawGraph(nb, highlight, recentre) {
    const R = 200;
    const pos = new Map();
    const maxHop = Math.max(0, ...nb.nodes.map((n) => n.hop || 0));
    pos.set(nb.center, { x: 0, y: 0 });
    for (let hop = 1; hop <= maxHop; hop++) {
      const ring = nb.nodes.filter((n) => (n.hop || 0) === hop)
        .sort((a, b) => String(a.type).localeCompare(String(b.type)) || String(a.label).localeCompare(String(b.label)));
      ring.forEach((n, i) => {
        const ang = -Math.PI / 2 + (2 * Math.PI * i) / ring.length + (hop - 1) * 0.3;
        pos.set(n.id, { x: Math.cos(ang) * R * hop, y: Math.sin(ang) * R * hop, ang });
      });
    }
    const W = R * maxHop + 170;
    const H = R * maxHop + 40;
    const root = svg("svg", { class: "graph-svg", testid: "graph", viewBox: `${-W} ${-H} ${2 * W} ${2 * H}`,
                              role: "img", "aria-label": `Graph around ${labelOf(nb, nb.center)}` },
      svg("title", {}, `Facts around ${labelOf(nb, nb.center)}`),
      svg("defs", {},
        svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7",
                        orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" })),
        svg("marker", { id: "arrow-new", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7",
                        markerHeight: "7", orient: "auto-start-reverse" },
          svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead new" }))));

    // edges, grouped per pair of nodes (one line, the relations listed along it)
    const pairs = new Map();
    for (const e of nb.edges) {
      if (!pos.has(e.subject) || !pos.has(e.object)) continue;
      const [a, b] = [e.subject, e.object].sort();
      const key = `${a}|${b}`;
      if (!pairs.has(key)) pairs.set(key, { a, b, edges: [] });
      pairs.get(key).edges.push(e);
    }
    const edgeLayer = svg("g", { class: "edges" });
    const labelLayer = svg("g", { class: "edge-labels" });
    const NODE_R = 9;
    for (const { edges } of pairs.values()) {
      // draw from the node nearer the centre outwards
      const hopOf = (id) => (id === nb.center ? 0 : (nb.nodes.find((n) => n.id === id) || {}).hop || 0);
      let [from, to] = [edges[0].subject, edges[0].object];
      if (hopOf(from) > hopOf(to)) [from, to] = [to, from];
      const p = pos.get(from);
      const q = pos.get(to);
      const dx = q.x - p.x;
      const dy = q.y - p.y;
      const len = Math.hypot(dx, dy) || 1;
      const ux = dx / len;
      const uy = dy / len;
      const isNew = edges.some((e) => highlight.has(`${e.subject}|${e.relation}|${e.object}`));
      const forward = edges.some((e) => e.subject === from);
      const backward = edges.some((e) => e.subject !== from);
      const line = svg("line", {
        x1: p.x + ux * NODE_R, y1: p.y + uy * NODE_R, x2: q.x - ux * NODE_R, y2: q.y - uy * NODE_R,
        class: isNew ? "edge new" : "edge", testid: "graph-edge",
        "marker-end": forward ? `url(#${isNew ? "arrow-new" : "arrow"})` : null,
        "marker-start": backward ? `url(#${isNew ? "arrow-new" : "arrow"})` : null,
      }, svg("title", {}, edges.map((e) => `${e.subject} ${e.relation} ${e.object}`).join("\n")));
      edgeLayer.appendChild(line);
      // one line per relation, stacked above the edge, upright; arrows say which way each fact goes
      let deg = (Math.atan2(dy, dx) * 180) / Math.PI;
      const flip = deg > 90 || deg < -90;
      if (flip) deg += 180;
      const parts = edges.map((e) => ((e.subject === from) !== flip ? `${e.relation} →` : `← ${e.relation}`));
      const lines = packLines(parts, 28);
      const mx = p.x + dx * 0.5;
      const my = p.y + dy * 0.5;
      // the block of lines centred on the edge (a halo keeps the line behind it readable)
      const first = lines.length === 1 ? -0.35 : -((lines.length - 1) * 1.1) / 2 + 0.35;
      labelLayer.appendChild(svg("text", {
        x: mx, y: my, class: isNew ? "edge-label new" : "edge-label", "text-anchor": "middle",
        transform: `rotate(${deg.toFixed(1)} ${mx.toFixed(1)} ${my.toFixed(1)})`, testid: "graph-edge-label",
      }, lines.map((line, k) => svg("tspan", { x: mx, dy: k === 0 ? `${first.toFixed(2)}em` : "1.1em" }, line))));
    }
    root.appendChild(edgeLayer);
    root.appendChild(labelLayer);

    const nodeLayer = svg("g", { class: "nodes" });
    for (const n of nb.nodes) {
      const p = pos.get(n.id);
      if (!p) continue;
      const centre = n.id === nb.center;
      const right = centre || Math.cos(p.ang || 0) >= -1e-6;
      const g = svg("g", { class: centre ? "node centre" : "node", testid: "graph-node", "data-id": n.id,
                           transform: `translate(${p.x.toFixed(1)} ${p.y.toFixed(1)})`,
                           tabindex: centre ? null : "0", role: centre ? null : "button",
                           "aria-label": centre ? null : `Centre the graph on ${n.label}` },
        svg("title", {}, `${n.label} (${n.type || "entity"}, ${n.id})`),
        svg("circle", { r: centre ? NODE_R + 4 : NODE_R, fill: colourOf(n.type) }),
        svg("text", {
          x: centre ? 0 : right ? NODE_R + 4 : -(NODE_R + 4), y: centre ? -(NODE_R + 9) : 4,
          "text-anchor": centre ? "middle" : right ? "start" : "end", class: "node-label",
        }, shorten(n.label, 24)));
      if (!centre) {
        const go = () => recentre(n.id);
        g.addEventListener("click", go);
        g.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); go(); }
        });
      }
      nodeLayer.appendChild(g);
    }
    root.appendChild(nodeLayer);
    return root;
  }

  // -- history ------------------------------------------------------------------------------------------
  async function loadHistory() {
    const holder = $("#history");
    const msg = $("#history-message");
    let out;
    try {
      out = await api("GET", "/api/edits?limit=50");
    } catch (err) {
      clear(msg).appendChild(errorBox(err));
      return;
    }
    clear(holder);
    $("#panel-history h2").textContent = state.me && state.me.can_review ? "All edits" : "Your edits";
    if (!out.edits.length) {
      holder.appendChild(el("p", { class: "muted", testid: "history-empty" }, "No edits yet."));
      return;
    }
    const canRollback = state.me && state.me.can_edit;
    holder.appendChild(el("table", { class: "history" },
      el("thead", {}, el("tr", {}, ["#", "Status", "Request", "Author", "When", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, out.edits.map((e) => {
        const actions = el("td", { class: "row-actions" });
        if (e.status === "applied" && canRollback) {
          actions.appendChild(el("button", { type: "button", class: "secondary", testid: "rollback",
                                             "aria-label": `Roll back edit #${e.id}`,
                                             onclick: () => rollback(e.id, false, actions) }, "Roll back"));
        }
        return el("tr", { testid: "history-row", "data-edit-id": e.id, "data-status": e.status },
          el("td", {}, `#${e.id}`),
          el("td", {}, el("span", { class: `status status-${e.status}`, testid: "history-status" }, e.status)),
          el("td", { class: "text" }, e.text || describeTriples(e)),
          el("td", {}, e.author),
          el("td", { class: "muted" }, when(e.created)),
          actions);
      }))));
  }

  function describeTriples(e) {
    const req = (e.plan && e.plan.requested) || [];
    return req.map((r) => `${r.op} ${factText(r)}`).join("; ") || "(structured edit)";
  }

  async function rollback(id, cascade, cell) {
    const msg = $("#history-message");
    clear(msg);
    for (const b of cell.querySelectorAll("button")) b.disabled = true;
    try {
      const out = await api("POST", `/api/edits/${id}/rollback`, { cascade });
      const ids = (out.rolled_back || [id]).map((i) => `#${i}`).join(", ");
      msg.appendChild(el("p", { class: "ok", testid: "history-done", role: "status" }, `Rolled back ${ids}.`));
      await loadHistory();
    } catch (err) {
      msg.appendChild(errorBox(err));
      if (err.status === 409 && err.error === "DependentEdits" && !cascade) {
        const deps = (err.details.dependents || []).map((i) => `#${i}`).join(", ");
        msg.appendChild(el("div", { class: "actions" },
          el("button", { type: "button", testid: "rollback-cascade", onclick: () => rollback(id, true, cell) },
            `Roll back #${id} with its dependents${deps ? ` (${deps})` : ""}`),
          el("button", { type: "button", class: "secondary", testid: "cancel",
                         onclick: () => { clear(msg); loadHistory(); } }, "Cancel")));
      } else {
        for (const b of cell.querySelectorAll("button")) b.disabled = false;
      }
    }
  }

  // -- review -------------------------------------------------------------------------------------------
  async function loadReview() {
    const holder = $("#review");
    let out;
    try {
      out = await api("GET", "/api/review");
    } catch (err) {
      clear($("#review-message")).appendChild(errorBox(err));
      return;
    }
    clear(holder);
    if (!out.edits.length) {
      holder.appendChild(el("p", { class: "muted", testid: "review-empty" }, "Nothing waits for review."));
      return;
    }
    for (const e of out.edits) {
      const plan = e.plan || {};
      const reasonId = `reject-reason-${e.id}`;
      const reason = el("input", { id: reasonId, type: "text", maxlength: "1000", testid: "reject-reason" });
      const buttons = el("div", { class: "actions" });
      const card = el("article", { class: "card review-item", testid: "review-row", "data-edit-id": e.id },
        el("h3", {}, `#${e.id} by ${e.author}: `, e.text || describeTriples(e)),
        el("p", { class: "muted" }, when(e.created)),
        renderPlan(plan, null),
        buttons);
      append(buttons, [
        el("button", { type: "button", testid: "approve", onclick: () => decide(e.id, "approve", null, card) }, "Approve"),
        el("label", { for: reasonId }, "Reason"), reason,
        el("button", { type: "button", class: "danger", testid: "reject",
                       onclick: () => decide(e.id, "reject", reason.value, card) }, "Reject"),
      ]);
      holder.appendChild(card);
    }
  }

  async function decide(id, what, reason, card) {
    const msg = $("#review-message");
    clear(msg);
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      const out = await api("POST", `/api/review/${id}/${what}`, what === "reject" ? { reason: reason || "" } : {});
      const status = (out && out.status) || (what === "approve" ? "approved" : "rejected");
      msg.appendChild(el("p", { class: "ok", testid: "review-done", role: "status" }, `Edit #${id}: ${status}.`));
      await loadReview();
    } catch (err) {
      msg.appendChild(errorBox(err));
      for (const b of card.querySelectorAll("button")) b.disabled = false;
    }
  }

  // -- start ---------------------------------------------------------------------------------------------
  function start() {
    $("#login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const token = $("#token").value.trim();
      clear($("#login-error"));
      if (!token) return;
      const button = $("[data-testid=login-button]");
      button.disabled = true;
      try {
        await login(token);
      } catch (err) {
        $("#login-error").appendChild(errorBox(err));
      } finally {
        button.disabled = false;
      }
    });
    $("#logout").addEventListener("click", () => logout());
    $("#chat-form").addEventListener("submit", onChat);
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => selectTab(tab.dataset.panel));
      tab.addEventListener("keydown", tabKeys);
    }
    $("#history-refresh").addEventListener("click", () => { clear($("#history-message")); loadHistory(); });
    $("#review-refresh").addEventListener("click", () => { clear($("#review-message")); loadReview(); });
    health();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      login(saved).catch((err) => logout(errorBox(err)));
    } else {
      $("#token").focus();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
