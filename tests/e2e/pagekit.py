"""What a visitor does on the page, as small steps the browser tests share."""

from __future__ import annotations

PlaywrightTimeout = __import__("playwright.sync_api", fromlist=["TimeoutError"]).TimeoutError

DESKTOP, PHONE = (1440, 900), (390, 844)


def upload(page, slot: str, path: str) -> None:
    page.locator(f"#{slot} input[type=file]").set_input_files(path)


def wait_for_text(page, selector: str, *parts: str, timeout: int = 10_000) -> str:
    """Wait until the element's text holds every part (events land one by one), then return it."""
    page.wait_for_function(
        "([selector, parts]) => { const el = document.querySelector(selector);"
        " return !!el && parts.every(p => el.innerText.includes(p)); }", arg=[selector, list(parts)], timeout=timeout)
    return page.locator(selector).inner_text()


def pick_person(page, index: int = 0) -> None:
    """Click an example person: it fills the person slot."""
    page.locator("#example-people .thumbnail-item").nth(index).click()
    page.locator("#person img").wait_for(timeout=10_000)


def pick_garment(page, index: int, slot: int) -> None:
    """Click an example garment; it lands in the first empty slot (`slot`), whose guess then shows."""
    page.locator("#example-garments .thumbnail-item").nth(index).click()
    page.locator(f"#garment_{slot} img").wait_for(timeout=10_000)


def example_index(page, caption: str) -> int:
    """The position of the example garment or person with this caption (its alt text)."""
    alts = page.eval_on_selector_all("#example-garments img, #example-people img", "els => els.map(e => e.alt)")
    garments = page.eval_on_selector_all("#example-garments img", "els => els.map(e => e.alt)")
    people = page.eval_on_selector_all("#example-people img", "els => els.map(e => e.alt)")
    assert caption in alts, f"no example called {caption!r} in {alts}"
    return (garments if caption in garments else people).index(caption)


def open_advanced(page) -> None:
    if not page.locator("#mode").is_visible():
        page.locator("#advanced > button, #advanced .label-wrap").first.click()
        page.locator("#mode").wait_for(state="visible", timeout=5_000)


def open_details(page) -> None:
    if not page.locator("#timing-record").is_visible():
        page.locator("#details > button, #details .label-wrap").first.click()
        page.locator("#timing-record").wait_for(state="visible", timeout=5_000)


def set_results(page, count: int) -> None:
    """Type the number of results into the slider's box and leave it (the value is committed on change)."""
    open_advanced(page)
    box_ = page.locator("#num-images input[type=number]")
    box_.wait_for(state="visible")
    shown = f"document.querySelector('#num-images input[type=range]').value === '{count}'"
    for _ in range(5):
        box_.fill(str(count))
        box_.press("Tab")
        try:
            page.wait_for_function(shown, timeout=2_000)
            page.wait_for_timeout(300)  # the change event reaches the app's state
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the number-of-results slider would not hold {count}")


def choose_async(page) -> None:
    open_advanced(page)
    page.locator("#mode label").nth(1).click()
    page.locator("#job-id").wait_for(state="visible", timeout=5_000)


STATUS = "#status [data-testid=markdown]"  # the line itself, without gradio's progress tracker beside it


def status_text(page) -> str:
    return page.locator(STATUS).inner_text().strip()


def wait_until_done(page, timeout: int = 30_000) -> str:
    """Wait for the run to end (the button is back, the line no longer busy); the status line's text."""
    page.wait_for_function("(sel) => { const b = document.querySelector('#try-on'); const s = document.querySelector(sel);"
                           " return b && !b.disabled && s && s.innerText.trim() && !s.innerText.includes('⏳'); }",
                           arg=STATUS, timeout=timeout)
    return status_text(page)


def run_look(page, button: str = "#try-on", timeout: int = 30_000) -> str:
    """Press the button and wait for this run's last word (not the one already on the line)."""
    before = status_text(page) if page.locator(STATUS).count() else ""
    page.locator(button).click()
    page.wait_for_function("([sel, before]) => { const s = document.querySelector(sel); return s && s.innerText.trim() !== before; }",
                           arg=[STATUS, before], timeout=timeout)
    return wait_until_done(page, timeout)


def wait_for_numbers(page, timeout: int = 10_000) -> None:
    """The table and the chart are drawn (they are hidden while a run is on, so these are this run's)."""
    page.wait_for_function("() => document.querySelectorAll('#timings [role=row][data-index]').length > 0 &&"
                           " [...document.querySelectorAll('#timing-chart svg [aria-label]')].some(e => e.getAttribute('aria-label').includes('; ms: '))",
                           timeout=timeout)


def chart_bars(page) -> dict[str, float]:
    """The timing chart's bars as Vega labels them for screen readers: {"2. Provider call 1": 77.4, ...}."""
    wait_for_numbers(page)
    labels = page.eval_on_selector_all("#timing-chart svg [aria-label]", "els => els.map(e => e.getAttribute('aria-label'))")
    bars = {}
    for label in labels:
        if "; ms: " in label:
            step, ms = label.split(" : ", 1)[-1].split("; ms: ")
            bars[step] = float(ms)
    return bars


def table_rows(page) -> list[list[str]]:
    """The timing table's body rows, cell texts."""
    wait_for_numbers(page)
    # gradio 6's Dataframe draws its rows as ARIA grid rows (the <tbody> is a hidden sizing row).
    return page.eval_on_selector_all(
        "#timings [role=row][data-index]",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))")


def image_size(page, selector: str, timeout: int = 10_000) -> tuple[int, int]:
    """The picture's natural size once the browser has decoded it: an <img> whose src just changed
    reports 0 × 0 until then, so reading it straight after it appears races the download."""
    page.wait_for_function(
        "selector => { const img = document.querySelector(selector);"
        " return !!img && img.complete && img.naturalWidth > 0; }", arg=selector, timeout=timeout)
    width, height = page.locator(selector).evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return width, height


def box(page, selector: str) -> dict[str, float]:
    return page.locator(selector).first.bounding_box()


def in_first_screen(page, selector: str) -> bool:
    """Wholly inside the viewport as the page opens (no scrolling)."""
    b = box(page, selector)
    size = page.viewport_size
    return b is not None and b["y"] >= 0 and b["y"] + b["height"] <= size["height"] and b["x"] + b["width"] <= size["width"] + 1
