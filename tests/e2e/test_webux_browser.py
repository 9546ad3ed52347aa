"""Real-browser tests of the first hour (issue 16): the first run's home page and empty
states, a search kept in the URL (Back, a shared link), a broken file refused at once,
and nothing wider than a 390-px screen. Screenshots at 1280 and 390 px wide go to
test-artifacts/ (``webux-*``) for a person to look at.
Needs Debian's chromium (`apt-get install chromium`, never `playwright install`).
"""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS
from tests.support.cli import run_cli
from tests.support.data import DATA
from tests.support.server import ServerProcess, copy_slice

pytestmark = pytest.mark.browser

WIDTHS = (1280, 390)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A library indexed as scripts/serve.sh does: 2 labels per folder, no distractor labelled."""
    base = tmp_path_factory.mktemp("first-run")
    photos = base / "photos"
    copy_slice(photos, classes=4, per_class=5)
    (photos / "distractors").mkdir()
    for src in sorted((DATA / "distractors").glob("*.jpg"))[:2]:
        shutil.copy(src, photos / "distractors" / src.name)
    lib = base / "lib"
    run_cli(
        "index", str(photos), "--library", str(lib), "--labels-from-folders",
        "--labels-per-class", "2", "--unlabelled-folder", "distractors",
    )  # fmt: skip
    server = ServerProcess(lib)
    yield server, photos
    server.stop()


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    base = tmp_path_factory.mktemp("empty")
    (base / "nothing").mkdir()
    run_cli("index", str(base / "nothing"), "--library", str(base / "lib"))
    server = ServerProcess(base / "lib")
    yield server
    server.stop()


@pytest.fixture()
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture()
def page(context):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    assert errors == [], errors  # no script errors on any page


def shots(page, name: str) -> None:
    """Screenshots at both widths; at 390 px nothing may be wider than the screen."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)  # a layout pass after the resize
        page.screenshot(path=str(ARTIFACTS / f"webux-{name}-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} is {scroll} px wide at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})


def card_ids(page) -> list[str]:
    page.wait_for_selector("#results .card")
    return page.locator("#results .card").evaluate_all("cs => cs.map(c => c.dataset.id)")


def test_first_run_home_says_what_was_labelled(page, first_run):
    server, _ = first_run
    page.goto(server.url + "/")
    note = page.locator("#first-run")
    expect(note).to_contain_text("8 of 22 images have a human label (4 classes)")
    expect(note).to_contain_text("14 are left to the tagger")
    shots(page, "home")


def test_empty_library_pages_say_what_to_do(page, empty):
    page.goto(empty.url + "/")
    expect(page.locator("#first-run")).to_contain_text("The library is empty")
    shots(page, "home-empty")
    page.goto(empty.url + "/clusters")
    status = page.locator("#status")
    expect(status).to_contain_text("The library has no images")
    expect(status.locator("a")).to_have_attribute("href", "/library")
    assert page.locator("#toast").is_hidden()  # an empty state, not an error
    shots(page, "clusters-empty")


def test_search_back_and_a_shared_link_show_the_same_results(page, browser, first_run):
    server, photos = first_run
    page.goto(server.url + "/")
    page.set_input_files("#file", str(sorted((photos / "accordion").glob("*.jpg"))[0]))
    ids = card_ids(page)
    assert "query=" in page.url and "mode=fast" in page.url
    shots(page, "search")
    shared = page.url
    page.locator("#results .card").nth(1).click()
    page.wait_for_url(f"**/images/{ids[1]}")
    page.go_back()
    page.wait_for_url(shared)
    expect(page.locator("#results .card")).to_have_count(len(ids))
    assert card_ids(page) == ids
    assert page.locator("#query-img").evaluate("i => i.naturalWidth") > 0  # the query shows
    page.reload()
    assert card_ids(page) == ids

    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        fresh = other.new_page()
        fresh.goto(shared)
        assert card_ids(fresh) == ids
    finally:
        other.close()


def test_a_broken_file_gets_a_message_at_once(page, first_run, tmp_path):
    server, _ = first_run
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"\xff\xd8\xff this is not really a JPEG")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    page.goto(server.url + "/")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/search" in r.url else None)
    page.set_input_files("#file", str(broken))
    error = page.locator("#file-error")
    expect(error).to_contain_text("“holiday.jpg” is not a readable image")
    shots(page, "broken-file")
    page.set_input_files("#file", str(notes))
    expect(error).to_contain_text("“notes.txt” is not an image file")
    assert requests == []  # refused in the page, nothing sent


def test_evaluation_progress_and_the_full_report(page, context, first_run):
    server, _ = first_run
    page.goto(server.url + "/evaluation")
    with page.expect_response(
        lambda r: r.url.endswith("/api/evaluation") and r.request.method == "POST"
    ) as started:
        page.click("#run-eval")
    assert started.value.status == 202
    seen = []
    while True:  # what the page polls, watched closely
        cv = page.request.get(server.url + "/api/evaluation").json()["cross_validation"]
        if cv["state"] != "running":
            break
        seen.append(cv["progress"])
        if "; " in cv["progress"] and not any("; " in s for s in seen[:-1]):
            shots(page, "evaluation-running")  # two heads at once, each with its step
        page.wait_for_timeout(50)
    assert any("fold" in s and "head" in s for s in seen), seen  # per head and fold
    expect(page.locator("#figures table")).to_contain_text("accuracy", timeout=120_000)
    link = page.locator("#report-open")
    expect(link).to_be_visible()
    assert page.locator("#report-download").get_attribute("href").endswith("download=1")
    shots(page, "evaluation")
    with context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert report.url.endswith("/evaluation/report")
    width = report.evaluate("document.body.getBoundingClientRect().width")
    assert width > 900  # full width, not a frame
    report.screenshot(path=str(ARTIFACTS / "webux-report-1280.png"))
    download = page.request.get(server.url + "/evaluation/report?download=1")
    assert "attachment" in download.headers["content-disposition"]


@pytest.fixture(scope="module")
def unplugged(tmp_path_factory):
    """A library whose only folder was moved away after indexing (an unplugged disk)."""
    base = tmp_path_factory.mktemp("unplugged")
    photos = base / "photos"
    copy_slice(photos, classes=2, per_class=2)
    run_cli("index", str(photos), "--library", str(base / "lib"), "--labels-from-folders")
    photos.rename(base / "elsewhere")
    run_cli("index", str(photos), "--library", str(base / "lib"))  # marks them offline
    server = ServerProcess(base / "lib")
    yield server
    server.stop()


def test_offline_images_are_marked_on_the_cards_and_the_image_page(page, unplugged):
    page.goto(unplugged.url + "/library")
    page.wait_for_selector("#grid .card")
    cards = page.locator("#grid .card")
    assert cards.count() == 4
    expect(page.locator("#grid .card.offline")).to_have_count(4)
    expect(cards.first.locator(".chip.offline")).to_have_text("offline")
    assert page.locator("#toast").is_hidden()  # missing thumbnails are no error
    shots(page, "library-offline")
    cards.first.click()
    note = page.locator("#offline-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("its folder cannot be read now")
    shots(page, "image-offline")
