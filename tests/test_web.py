"""The chat page (``/``) end to end: the real service and headless Chromium (Debian's ``chromium``).

Playwright drives the browser installed by the system; it never downloads one. Without
``/usr/bin/chromium`` (``$ONEEDIT_CHROMIUM`` names another) or the ``playwright`` package the tests
are skipped, unless ``ONEEDIT_REQUIRE_BROWSER=1`` (set by CI once it has installed chromium), when
they fail.

One server per module, over a copy of the test workspace with its trained tiny model. The tests
run in file order; each leaves the KG as it found it (its edits are rolled back or rejected).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path(os.environ.get("ONEEDIT_CHROMIUM", "/usr/bin/chromium"))  # another build: set the variable
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 90_000  # a MEMIT edit of the tiny model takes seconds; allow for a busy machine

EDIT = "The capital of Germany is Hamburg"
QUESTION = "What is the capital of Germany?"
AMBIGUOUS = "The Queen's husband is the King"  # Queen Camilla, Letizia or Máxima; Charles III, Felipe VI or ...


def _no_browser(reason: str):
    if os.environ.get("ONEEDIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and ONEEDIT_REQUIRE_BROWSER=1 says the browser tests must run")
    pytest.skip(f"{reason}: the browser tests need Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed")
    from playwright.sync_api import expect

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    expect.set_options(timeout=WAIT_MS)  # the page waits on the service, which shares a busy machine
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
            expect.set_options(timeout=5_000)  # playwright's default


@pytest.fixture(scope="module")
def service(knowledge_ws, tmp_path_factory):
    """The service over a copy of the trained test workspace, and a token per role."""
    from controller.users import UserStore
    from oneedit.service.server import ServerThread

    root = tmp_path_factory.mktemp("web") / "ws"
    shutil.copytree(knowledge_ws, root)
    tokens = {}
    with UserStore(root / "ledger.sqlite") as users:
        for role in ("viewer", "editor", "curator"):
            tokens[role] = users.add(f"web-{role}", role)[1]
        # an editor whose trust is low: their edits wait for a curator
        tokens["doubtful"] = users.add("web-doubtful", "editor")[1]
        for _ in range(100):
            if users.get("web-doubtful").trust < users.trust.review_below:
                break
            users.adjust_trust("web-doubtful", "rejected")
    with ServerThread(root, port=0, window=0.05) as srv:
        srv.wait_ready()
        srv.tokens = tokens
        yield srv


def client(srv, role: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.tokens[role]}"}, timeout=60)


@pytest.fixture
def page(browser, service):
    """A fresh browser tab on the page; fails the test on a script error or an outside request."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))

    def console(msg):  # the browser logs every 4xx answer and blocked request: those the tests expect
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(msg.text)

    tab.on("console", console)
    tab.on("request", lambda req: None if req.url.startswith(service.url) else outside.append(req.url))
    tab.set_default_timeout(WAIT_MS)
    tab.goto(service.url + "/")
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"
    assert not outside, f"the page loaded something from outside the service: {outside}"


def login(page, token: str, name: str, role: str) -> None:
    from playwright.sync_api import expect

    page.get_by_label("API token").fill(token)
    page.get_by_test_id("login-button").click()
    expect(page.get_by_test_id("user-name")).to_have_text(name)
    expect(page.get_by_test_id("user-role")).to_have_text(role)
    expect(page.get_by_test_id("chat-input")).to_be_focused()


def say(page, text: str):
    """Send a line; the turn it makes."""
    page.get_by_test_id("chat-input").fill(text)
    page.get_by_test_id("send").click()
    return page.get_by_test_id("turn").last


def capital_of_germany(srv, role: str = "viewer") -> list[str]:
    with client(srv, role) as c:
        facts = c.get("/api/kg/entities/germany").raise_for_status().json()["facts"]
    return [f["object"] for f in facts if f["relation"] == "capital"]


def test_a_question_shows_the_kg_and_the_model_side_by_side(page, service):
    from playwright.sync_api import expect

    login(page, service.tokens["viewer"], "web-viewer", "viewer")
    turn = say(page, QUESTION)
    expect(turn.get_by_test_id("intent-op")).to_have_text("query")
    expect(turn.get_by_test_id("intent-subject")).to_have_attribute("data-id", "germany")
    answer = turn.get_by_test_id("answer")
    expect(answer.get_by_test_id("answer-kg")).to_have_text("Berlin")
    expect(answer.get_by_test_id("answer-model")).to_contain_text("Berlin")
    expect(answer.get_by_test_id("answer-agree")).to_have_attribute("data-agree", "agree")
    # the neighbourhood of Germany, with Berlin on it
    graph = turn.get_by_test_id("graph")
    expect(graph.locator("[data-testid=graph-node][data-id=berlin]")).to_have_count(1)
    assert graph.get_by_test_id("graph-edge").count() > 5
    # a viewer has no review tab, and the token survives a reload (sessionStorage)
    expect(page.get_by_test_id("tab-review")).to_be_hidden()
    page.reload()
    expect(page.get_by_test_id("user-name")).to_have_text("web-viewer")
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('oneedit.token')") is None


def test_an_edit_is_planned_applied_followed_and_rolled_back(page, service):
    from playwright.sync_api import expect

    login(page, service.tokens["editor"], "web-editor", "editor")
    expect(page.get_by_test_id("tab-review")).to_be_hidden()
    turn = say(page, EDIT)
    expect(turn.get_by_test_id("intent-op")).to_have_text("assert")
    expect(turn.get_by_test_id("intent-object")).to_have_attribute("data-id", "hamburg")
    # the plan: Berlin is in the way and goes; Hamburg comes in, with its inverse fact
    plan = turn.get_by_test_id("plan")
    expect(plan).to_have_attribute("data-decision", "apply")
    expect(plan.get_by_test_id("conflict")).to_contain_text("berlin")
    expect(plan.get_by_test_id("kg-removed")).to_contain_text("(germany, capital, berlin)")
    expect(plan.get_by_test_id("kg-added")).to_contain_text("(germany, capital, hamburg)")
    expect(plan.get_by_test_id("derived")).to_contain_text("(hamburg, capital_of, germany)")
    assert capital_of_germany(service) == ["berlin"]  # a dry run changes nothing

    plan.get_by_test_id("apply").click()
    status = turn.get_by_test_id("edit-status")
    expect(status).to_have_text("applied")
    progress = turn.get_by_test_id("edit-progress")
    edit_id = int(progress.get_attribute("data-edit-id"))
    expect(progress).to_have_attribute("data-via", "stream")  # followed by server-sent events, no polling
    with client(service, "editor") as c:
        row = c.get(f"/api/edits/{edit_id}").raise_for_status().json()
    assert row["status"] == "applied" and row["author"] == "web-editor"
    assert capital_of_germany(service) == ["hamburg"]
    # the model's answers before and after, from the ledger row
    answers = turn.get_by_test_id("model-answers")
    first = answers.get_by_test_id("model-answer").first
    expect(first.get_by_test_id("answer-expected")).to_have_text("Hamburg")
    expect(first.get_by_test_id("answer-before")).to_have_text("Berlin")
    expect(first.get_by_test_id("answer-after")).to_have_text("Hamburg")
    # the top bar shows how far the model agrees with the KG (an audit of a sample of facts)
    expect(page.get_by_test_id("agreement")).to_contain_text("model agrees with the KG on")
    share = float(page.get_by_test_id("agreement").get_attribute("data-agreement"))
    assert 0.5 <= share <= 1.0
    # the graph: Germany's neighbourhood, the new capital edge highlighted
    graph = turn.get_by_test_id("graph")
    expect(graph.locator("[data-testid=graph-node][data-id=hamburg]")).to_have_count(1)
    expect(graph.locator("[data-testid=graph-edge-label].new").first).to_contain_text("capital")
    # a click on a node centres the graph on it
    graph.locator("[data-testid=graph-node][data-id=hamburg]").click()
    expect(turn.get_by_test_id("graph").locator(".node.centre")).to_have_attribute("data-id", "hamburg")

    # history: the edit, applied, rolled back from the page
    page.get_by_test_id("tab-history").click()
    row_el = page.locator(f"[data-testid=history-row][data-edit-id='{edit_id}']")
    expect(row_el.get_by_test_id("history-status")).to_have_text("applied")
    row_el.get_by_test_id("rollback").click()
    expect(page.get_by_test_id("history-done")).to_contain_text(f"#{edit_id}")
    expect(row_el.get_by_test_id("history-status")).to_have_text("rolled_back")
    expect(row_el.get_by_test_id("rollback")).to_have_count(0)
    with client(service, "editor") as c:
        assert c.get(f"/api/edits/{edit_id}").json()["status"] == "rolled_back"
    assert capital_of_germany(service) == ["berlin"]


def test_a_follow_up_reads_against_the_last_turn(page, service):
    """'and France's?' after a question about Germany's capital; 'Change it to Hamburg' after it:
    read against the last turn (shown as a follow-up) and, for the edit, planned before anything."""
    from playwright.sync_api import expect

    login(page, service.tokens["editor"], "web-editor", "editor")
    say(page, QUESTION)
    turn = say(page, "and France's?")
    expect(turn.get_by_test_id("parse")).to_contain_text("a follow-up to the last turn")
    expect(turn.get_by_test_id("intent-subject")).to_have_attribute("data-id", "france")
    expect(turn.get_by_test_id("answer").get_by_test_id("answer-kg")).to_have_text("Paris")
    turn = say(page, "Change it to Lyon")
    expect(turn.get_by_test_id("intent-op")).to_have_text("replace")
    expect(turn.get_by_test_id("intent-subject")).to_have_attribute("data-id", "france")
    plan = turn.get_by_test_id("plan")
    expect(plan.get_by_test_id("kg-removed")).to_contain_text("(france, capital, paris)")
    plan.get_by_test_id("cancel").click()
    with client(service, "viewer") as c:
        facts = c.get("/api/kg/entities/france").raise_for_status().json()["facts"]
    assert [f["object"] for f in facts if f["relation"] == "capital"] == ["paris"]


def test_ambiguous_names_are_chosen_with_buttons(page, service):
    from playwright.sync_api import expect

    login(page, service.tokens["editor"], "web-editor", "editor")
    turn = say(page, AMBIGUOUS)
    # the dry run of the text is a 409 AmbiguousRequest: its options, one button each
    first = turn.get_by_test_id("choice").first
    expect(first.get_by_test_id("choice-question")).to_contain_text("The Queen")
    options = first.get_by_test_id("choice-option")
    expect(options).to_have_count(3)
    assert {options.nth(i).get_attribute("data-id") for i in range(3)} == {"queen_camilla", "queen_letizia", "queen_maxima"}
    first.locator("[data-testid=choice-option][data-id=queen_letizia]").click()
    # then the other ambiguous name, from the parser's candidates
    second = turn.get_by_test_id("choice").nth(1)
    expect(second.get_by_test_id("choice-question")).to_contain_text("the King")
    second.locator("[data-testid=choice-option][data-id=charles_iii]").click()
    # resubmitted as structured facts (a dry run): both marriages in the way
    plan = turn.get_by_test_id("plan")
    expect(plan.get_by_test_id("kg-added")).to_contain_text("(queen_letizia, spouse, charles_iii)")
    expect(plan.get_by_test_id("conflict")).to_have_count(2)
    expect(plan.get_by_test_id("plan-question")).to_contain_text("replacing 2 conflicting facts")
    expect(plan.get_by_test_id("new-entities")).to_have_count(0)
    # applied with the event stream blocked: the page falls back to polling the edit
    page.route("**/api/edits/*/events", lambda route: route.abort())
    plan.get_by_test_id("apply").click()
    expect(turn.get_by_test_id("edit-status")).to_have_text("applied")
    progress = turn.get_by_test_id("edit-progress")
    expect(progress).to_have_attribute("data-via", "poll")
    edit_id = int(progress.get_attribute("data-edit-id"))
    with client(service, "editor") as c:
        row = c.get(f"/api/edits/{edit_id}").json()
        assert row["status"] == "applied" and row["request"].get("triples")  # sent as structured facts
        assert [(r["subject"], r["object"]) for r in row["plan"]["requested"]] == [("queen_letizia", "charles_iii")]
        assert c.post(f"/api/edits/{edit_id}/rollback", json={}).raise_for_status().json()["rolled_back"] == [edit_id]
        facts = c.get("/api/kg/entities/queen_letizia").json()["facts"]
        assert [f["object"] for f in facts if f["relation"] == "spouse"] == ["felipe_vi"]


def test_roles_a_viewer_cannot_edit_and_a_curator_reviews(page, service):
    from playwright.sync_api import expect

    # a viewer: the dry run is refused with the API's message and hint
    login(page, service.tokens["viewer"], "web-viewer", "viewer")
    turn = say(page, EDIT)
    error = turn.get_by_test_id("error")
    expect(error).to_contain_text("403")
    expect(error.get_by_test_id("error-message")).to_contain_text("editing needs the editor role")
    expect(error.get_by_test_id("error-hint")).to_contain_text("set-role")
    expect(turn.get_by_test_id("apply")).to_have_count(0)
    page.get_by_test_id("logout").click()

    # an editor with low trust: the edit waits for review
    with client(service, "doubtful") as c:
        edit_id = c.post("/api/edits", json={"text": "The capital of France is Lyon"}).raise_for_status().json()["id"]
        deadline = time.monotonic() + WAIT_MS / 1000
        while c.get(f"/api/edits/{edit_id}").json()["status"] != "needs_review" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get(f"/api/edits/{edit_id}").json()["status"] == "needs_review"

    # a curator sees the review tab and rejects it with a reason
    login(page, service.tokens["curator"], "web-curator", "curator")
    page.get_by_test_id("tab-review").click()
    item = page.locator(f"[data-testid=review-row][data-edit-id='{edit_id}']")
    expect(item).to_contain_text("The capital of France is Lyon")
    expect(item.get_by_test_id("conflict")).to_contain_text("paris")
    item.get_by_label("Reason").fill("Paris is the capital")
    item.get_by_test_id("reject").click()
    expect(page.get_by_test_id("review-done")).to_contain_text(f"#{edit_id}")
    expect(page.get_by_test_id("review-empty")).to_be_visible()
    with client(service, "curator") as c:
        row = c.get(f"/api/edits/{edit_id}").json()
    assert row["status"] == "rejected"
    # the curator's history shows everyone's edits, this one rejected
    page.get_by_test_id("tab-history").click()
    expect(page.locator(f"[data-testid=history-row][data-edit-id='{edit_id}'] [data-testid=history-status]")
           ).to_have_text("rejected")
