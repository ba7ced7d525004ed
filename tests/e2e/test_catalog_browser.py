"""Golden paths in a real browser: search from home, open a service, follow its owner team."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, expect


def test_search_open_service_follow_owner(page: Page, live_url: str) -> None:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(live_url + "/")
    page.keyboard.press("/")
    expect(page.locator("#home-search")).to_be_focused()
    page.keyboard.type("paymen")
    result = page.locator("#home-results a", has_text="Payments API").first
    expect(result).to_be_visible()
    result.click()
    expect(page).to_have_url(re.compile(r"/services/payments-api$"))
    expect(page.locator("#service-title")).to_contain_text("Payments API")
    expect(page.locator("#contacts")).to_contain_text("Tech lead")
    expect(page.locator("#graph svg")).to_be_visible()
    page.locator("#owner-link").click()
    expect(page).to_have_url(re.compile(r"/teams/payments$"))
    expect(page.locator("#team-name")).to_have_text("Payments")
    expect(page.locator("#team-services")).to_contain_text("Payments API")
    assert errors == [], errors


def test_typo_in_header_search_still_finds_the_service(page: Page, live_url: str) -> None:
    page.goto(live_url + "/teams")
    page.keyboard.press("/")
    page.keyboard.type("chekout")
    first = page.locator("#live-results a").first
    expect(first).to_be_visible()
    expect(page.locator("#live-results")).to_contain_text("Checkout")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/(services|teams|systems)/"))


def test_service_list_filters_live(page: Page, live_url: str) -> None:
    page.goto(live_url + "/services")
    page.select_option("select[name=tier]", "1")
    expect(page).to_have_url(re.compile(r"tier=1"))
    expect(page.locator("#service-count")).not_to_contain_text("64 services")
    for badge in page.locator("#service-rows td .badge.tier").all():
        expect(badge).to_have_text("T1")


def test_escaped_description_is_inert_in_the_browser(page: Page, live_url: str) -> None:
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.goto(live_url + "/services/product-reviews")
    expect(page.locator(".description")).to_contain_text("<b>rich</b>")
    assert page.locator(".description b").count() == 0
    assert dialogs == []


def test_service_page_fits_a_phone(phone: Page, live_url: str) -> None:
    phone.goto(live_url + "/services/checkout-api")
    expect(phone.locator("#service-title")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 392, f"page is {width}px wide on a 390px phone"
    expect(phone.locator("#owner-link")).to_be_visible()


def test_screenshot_of_a_service_page(page: Page, live_url: str) -> None:
    page.goto(live_url + "/services/payments-api")
    page.screenshot(path="test-results/service-page.png", full_page=True)
    expect(page.locator("#dependencies")).to_contain_text("Depends on")


def test_live_search_is_a_combobox_a_keyboard_can_drive(page: Page, live_url: str) -> None:
    page.goto(live_url + "/teams")
    box = page.locator("#global-search")
    expect(box).to_have_attribute("role", "combobox")
    expect(box).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("/")
    page.keyboard.type("checkout")
    expect(page.locator("#live-results [role=listbox] [role=option]").first).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = page.locator("#live-results [role=option]").nth(1)
    expect(second).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", second.get_attribute("id") or "missing")
    page.keyboard.press("Escape")
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#live-results [role=option]")).to_have_count(0)


def test_the_header_folds_into_a_menu_on_a_phone(phone: Page, live_url: str) -> None:
    phone.goto(live_url + "/services")
    toggle = phone.locator("#menu-toggle")
    services_link = phone.locator("#site-menu a[href='/services']")
    expect(toggle).to_be_visible()
    expect(services_link).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(services_link).to_be_visible()
    expect(services_link).to_have_attribute("aria-current", "page")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_dependency_graph_fits_and_zooms(page: Page, phone: Page, live_url: str) -> None:
    for viewer in (page, phone):
        viewer.goto(live_url + "/services/checkout-api")
        box = viewer.locator("#graph .graph-viewport").bounding_box()
        svg = viewer.locator("#graph svg.depgraph").bounding_box()
        assert box and svg and svg["width"] <= box["width"] + 1, (box, svg)
    graph = page.locator("#graph svg.depgraph")
    before = graph.get_attribute("viewBox")
    page.get_by_role("button", name="Zoom in").click()
    zoomed = graph.get_attribute("viewBox")
    assert zoomed != before
    assert float((zoomed or "").split()[2]) < float((before or "").split()[2])
    page.get_by_role("button", name="Zoom in").focus()
    page.keyboard.press("ArrowRight")
    assert float((graph.get_attribute("viewBox") or "").split()[0]) > float((zoomed or "").split()[0])
    page.get_by_role("button", name="Fit the whole graph").click()
    assert graph.get_attribute("viewBox") == before
