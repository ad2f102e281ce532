"""`sdperf dashboard`: the static site written from a synthetic history, read back with the
standard library's HTML parser: self-contained, every link lands, each case plotted with its
change marked, the latest nights tabled with their images, damaged files and killed runs named."""

from __future__ import annotations

import html.parser
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import PIL.Image
import pytest

from sdperf.config.profiles import load_profiles
from sdperf.reporting.dashboard import NO_IMAGE, write_dashboard
from sdperf.reporting.history_report import analyse
from sdperf.storage.history import Place, load

MACHINE = "runner-1"
NIGHTS = 20
STEP_NIGHT = 12  # index of the first slower night: night 13
STEP_LABEL = r"\+(19|20)\.\d%"  # the +20% step as measured through the nights' wobble
KILLED_CASE = "perf/test_latency.py::test_latency[cpu-bf16]"
ESCAPED_PACKAGE = "<script>alert(1)</script>"


def _entry(storage_key: str, case: str, night: int, median: float, lock: str, image: Path | None = None, *,
           packages: dict[str, str] | None = None, outcome: str | None = None) -> dict:
    # Rounds around the median, so each night has a spread to draw.
    latencies = [median * 0.98, median * 0.995, median, median * 1.01, median * 1.03]
    return {
        "run": f"202601{night + 1:02d}T020000Z-100-{night:06x}",
        "finished": f"2026-01-{night + 1:02d}T02:30:00+00:00",
        "storage_key": storage_key, "machine": MACHINE, "case": case,
        "test": f"perf/test_latency.py::test_latency[{case}]",
        "profile": storage_key.removeprefix("emulated-"), "recipe": case.split("-", 1)[1], "model": "builtin:tiny-sd15",
        "model_sha256": "ab" * 32, "median_s": median, "latencies_s": latencies, "status": "passed",
        "image_path": str(image) if image else None,
        "verdicts": {"baseline": {"latency": {"outcome": outcome}}} if outcome else {},
        "environment": {"lock_sha256": lock, "lock_packages": packages or {"torch": "2.4.0"}, "packages": {},
                        "sdperf_commit": "c0ffee"},
        "peak_rss_bytes": 500_000_000, "seconds_per_step": median / 20,
    }


def make_history(root: Path, image_dir: Path) -> dict:
    """20 nights of cpu-fp32 with a +20% step from night 13 (torch upgraded that night), a flat
    cpu-omp1 whose newest night alone is 15% slower and whose image is gone, 6 nights of
    emulated-pi5, a killed run and a damaged file."""
    cpu, pi5 = Place(root, "cpu", MACHINE), Place(root, "emulated-pi5", MACHINE)
    image_dir.mkdir(parents=True, exist_ok=True)
    png = image_dir / "cpu-fp32.png"
    PIL.Image.new("RGB", (32, 32), (200, 40, 40)).save(png)
    wobble = [0.000, 0.006, -0.004, 0.003, -0.007, 0.005, -0.002, 0.004, -0.005, 0.001]
    outcomes = ["same", "faster", "inconclusive", None]
    for night in range(NIGHTS):
        after = night >= STEP_NIGHT
        lock, packages = ("lock-b", {"torch": "2.5.0", ESCAPED_PACKAGE: "1"}) if after else ("lock-a", None)
        noise = 1 + wobble[night % len(wobble)]
        cpu.append(_entry("cpu", "cpu-fp32", night, 2.0 * (1.2 if after else 1.0) * noise, lock,
                          image=png if night == NIGHTS - 1 else None, packages=packages,
                          outcome="slower" if after else outcomes[night % 4]))
        newest = night == NIGHTS - 1
        cpu.append(_entry("cpu", "cpu-omp1", night, 3.0 * noise * (1.15 if newest else 1), lock, packages=packages,
                          image=image_dir / "gone.png" if newest else None))
    for night in range(6):
        pi5.append(_entry("emulated-pi5", "pi5-fp32", night, 9.0 * (1 + wobble[night]), "lock-a"))
    killed = "20260121T020000Z-100-killed"
    cpu.write_run({"run": killed, "state": "running", "storage_key": "cpu", "machine": MACHINE,
                   "selected": ["perf/test_latency.py::test_latency[cpu-fp32]", KILLED_CASE],
                   "finished": {"perf/test_latency.py::test_latency[cpu-fp32]": {"status": "passed"}},
                   "unfinished": [KILLED_CASE], "updated": "2026-01-21T02:10:00+00:00"})
    (cpu.folder / "entries" / "x--y.json").write_text("{not json", encoding="utf-8")
    return {"png": png, "step_run": _entry("cpu", "cpu-fp32", STEP_NIGHT, 1, "")["run"],
            "latest_run": _entry("cpu", "cpu-fp32", NIGHTS - 1, 1, "")["run"], "killed": killed}


class Page(html.parser.HTMLParser):
    """Tags, links, ids and text of one HTML page; sections by id with their text and svg count."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path, self.tags, self.links, self.ids, self.texts = path, [], [], set(), []
        self.rows: list[list[str]] = []
        self.sections: dict[str, dict] = {}
        self._section: str | None = None
        self._in_row = False
        self.feed(path.read_text(encoding="utf-8"))
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for name, value in attrs:
            if name in ("href", "src") or name.endswith(":href"):
                self.links.append(value or "")
        if tag == "section":
            self._section = values.get("id")
            self.sections[self._section] = {"text": [], "svg": 0, "ids": set()}
        if self._section:
            self.sections[self._section]["svg"] += tag == "svg"
            if values.get("id"):
                self.sections[self._section]["ids"].add(values["id"])
        if tag == "tr":
            self.rows.append([])
            self._in_row = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        if tag == "tr":
            self._in_row = False

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._section:
            self.sections[self._section]["text"].append(data)
        if self._in_row:
            self.rows[-1].append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.texts).split())

    def section_text(self, anchor: str) -> str:
        return " ".join("".join(self.sections[anchor]["text"]).split())

    def row(self, case: str) -> str:
        found = [" ".join(" ".join(row).split()) for row in self.rows if row and row[0] == case]
        assert len(found) == 1, f"{self.path.name}: no single table row for {case}"
        return found[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("dashboard")
    root, out = base / "history", base / "site"
    made = make_history(root, base / "images")
    loaded = load(root)
    index = write_dashboard(analyse(loaded.entries, load_profiles()), loaded, out)
    pages = {path.name: Page(path) for path in sorted(out.glob("*.html"))}
    return {**made, "out": out, "index": index, "pages": pages, "loaded": loaded}


def test_the_site_is_an_index_and_one_page_per_storage_key_and_machine(site: dict) -> None:
    assert site["index"] == site["out"] / "index.html"
    assert sorted(site["pages"]) == ["cpu--runner-1.html", "emulated-pi5--runner-1.html", "index.html"]
    cpu, pi5 = site["pages"]["cpu--runner-1.html"], site["pages"]["emulated-pi5--runner-1.html"]
    # emulated-pi5 is kept apart from the host's own cpu series.
    assert set(cpu.sections) == {"case-cpu-fp32", "case-cpu-omp1"}
    assert set(pi5.sections) == {"case-pi5-fp32"}
    index_links = site["pages"]["index.html"].links
    assert "cpu--runner-1.html" in index_links and "emulated-pi5--runner-1.html" in index_links


def test_every_link_is_relative_and_lands_inside_the_site(site: dict) -> None:
    out = site["out"].resolve()
    checked = 0
    for page in site["pages"].values():
        assert page.links
        for link in page.links:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc and not parts.path.startswith("/"), (
                f"{page.path.name}: {link} is not relative")
            if parts.path:
                target = (page.path.parent / unquote(parts.path)).resolve()
                assert target.is_relative_to(out) and target.is_file(), f"{page.path.name}: {link} lands nowhere"
            if parts.fragment:
                ids = (site["pages"][Path(parts.path).name] if parts.path else page).ids
                assert parts.fragment in ids, f"{page.path.name}: {link} names no anchor"
            checked += 1
        # Nothing fetched at view time: no script, stylesheet, frame or remote URL in any attribute.
        assert not {tag for tag, _ in page.tags} & {"script", "link", "iframe", "object", "embed", "base"}
        for tag, attributes in page.tags:
            for name, value in attributes.items():
                if not name.startswith("xmlns"):  # namespace names, never fetched
                    assert "http://" not in (value or "") and "https://" not in (value or ""), (tag, name, value)
        raw = page.path.read_text(encoding="utf-8")
        assert "url(http" not in raw and "@import" not in raw
    assert checked > 10


def test_each_case_is_plotted_with_its_change_point_marked(site: dict) -> None:
    cpu = site["pages"]["cpu--runner-1.html"]
    for page in site["pages"].values():
        for anchor, section in page.sections.items():
            assert section["svg"] == 1, f"{page.path.name}#{anchor}: one plot per case"
    fp32 = cpu.section_text("case-cpu-fp32")
    assert re.search(rf"from night {STEP_NIGHT + 1}, run {site['step_run']}: {STEP_LABEL}", fp32)
    assert "torch 2.4.0 -> 2.5.0" in fp32  # what changed that night
    assert "run-to-run noise" in fp32 or "calibrating" in fp32
    assert "slowdown (fails the nightly)" in fp32
    # The change's vertical line and its label are in the plot, at its first night.
    assert {f"case-cpu-fp32-change-{STEP_NIGHT + 1}", f"case-cpu-fp32-change-{STEP_NIGHT + 1}-label"} <= (
        cpu.sections["case-cpu-fp32"]["ids"])
    assert "case-cpu-fp32-suspected" not in cpu.sections["case-cpu-fp32"]["ids"]
    # One slow night is no change point: it is marked as suspected, in the plot and the text.
    omp1 = cpu.section_text("case-cpu-omp1")
    assert "No confirmed change point" in omp1
    assert "suspected slowdown (warning)" in omp1 and re.search(r"newest night alone \+15\.\d%", omp1)
    assert not any("-change-" in anchor for anchor in cpu.sections["case-cpu-omp1"]["ids"])
    assert "case-cpu-omp1-suspected" in cpu.sections["case-cpu-omp1"]["ids"]


def test_the_latest_nights_table_has_each_case_its_run_and_image(site: dict) -> None:
    for name in ("index.html", "cpu--runner-1.html"):
        page = site["pages"][name]
        fp32 = page.row("cpu-fp32")
        assert site["latest_run"] in fp32 and "5" in fp32.split() and "passed" in fp32
        assert re.search(rf"{STEP_LABEL} since {site['step_run']}", fp32)
        assert site["step_run"] in fp32 and "slowdown" in fp32 and "slower" in fp32
        assert NO_IMAGE not in fp32
        omp1 = page.row("cpu-omp1")
        assert "image not kept" in omp1 and "gone.png is gone" in omp1
        assert "suspected slowdown" in omp1 and re.search(r"newest night alone \+15\.\d%", omp1)
    pi5 = site["pages"]["emulated-pi5--runner-1.html"].row("pi5-fp32")
    assert NO_IMAGE in pi5 and "not compared" in pi5
    images = sorted({link for link in site["pages"]["index.html"].links if link.startswith("images/")})
    assert len(images) == 1 and site["latest_run"] in images[0]
    assert (site["out"] / images[0]).read_bytes() == site["png"].read_bytes()
    # The case page shows the image too, from the same copy.
    assert images[0] in [attributes.get("src") for tag, attributes in site["pages"]["cpu--runner-1.html"].tags
                         if tag == "img"]


def test_damaged_files_and_killed_runs_are_listed_on_the_index(site: dict) -> None:
    text = site["pages"]["index.html"].text
    assert [damaged.path.name for damaged in site["loaded"].damaged] == ["x--y.json"]
    assert "x--y.json" in text and "not valid JSON" in text
    assert site["killed"] in text and "no end recorded" in text and KILLED_CASE in text
    assert "1 of 2 case(s) finished" in text


def test_text_from_the_history_is_escaped(site: dict) -> None:
    cpu = site["pages"]["cpu--runner-1.html"]
    assert "script" not in {tag for tag, _ in cpu.tags}
    assert ESCAPED_PACKAGE in cpu.section_text("case-cpu-fp32")  # shown as text, not run


def test_an_empty_history_writes_an_index_saying_so(tmp_path: Path) -> None:
    index = write_dashboard([], load(tmp_path / "none"), tmp_path / "site")
    page = Page(index)
    assert "The history holds no entries yet" in page.text
    assert sorted(path.name for path in (tmp_path / "site").iterdir()) == ["index.html"]


def test_the_command_writes_the_site(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sdperf.cli.main import main

    made = make_history(tmp_path / "history", tmp_path / "images")
    out = tmp_path / "site"
    assert main(["dashboard", "--out", str(out), "--history", str(tmp_path / "history")]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out / 'index.html'}" in captured.out
    assert "x--y.json" in captured.err  # the command names the damaged file too
    assert made["latest_run"] in Page(out / "cpu--runner-1.html").row("cpu-fp32")
    assert (out / "images").is_dir()
