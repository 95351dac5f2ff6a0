"""serving/report.html in headless Chromium: every chart drawn, nothing fetched, a screenshot.

Skipped when Playwright or Debian's Chromium (`make browser-deps`) is missing.
"""

from __future__ import annotations

from drift_pipeline.report.page import write_report

from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_marks, sync_playwright

try:
    from test_report import CHART_COUNT, build_serving_copy, settings_for
except ImportError:  # tests/ imported as a package
    from tests.test_report import CHART_COUNT, build_serving_copy, settings_for

pytestmark = browser_marks(300)


def test_report_renders_every_chart_offline_in_chromium(tmp_path):
    serving_db = tmp_path / "analytics.duckdb"
    build_serving_copy(serving_db)
    report = tmp_path / "report.html"
    write_report(settings_for(serving_db), serving_db, report)
    ARTIFACTS.mkdir(exist_ok=True)

    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            charts = page.locator("svg.chart")
            assert charts.count() == CHART_COUNT
            for index in range(CHART_COUNT):
                chart = charts.nth(index)
                box = chart.bounding_box()
                title = chart.locator("title").first.text_content()
                assert box and box["width"] > 300 and box["height"] > 150, title
                # Drawn marks beyond the background and the axes: bars, lines, points or cells.
                marks = chart.evaluate("svg => svg.querySelectorAll('path, circle, rect[rx]').length")
                assert marks >= 3, f"{title}: {marks} marks"
                assert "no data yet" not in chart.text_content()
            assert page.locator("table tbody tr").count() >= 2
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()

    assert requests == [report.as_uri()], f"the report fetched {requests[1:]}"
