"""Crawling: parsing pages, politeness, safety, exact outcome counts and resume, against a real local site.

Every server listens on 127.0.0.1; 127.0.0.2 appears only as an address the
crawler must refuse before connecting.
"""

from __future__ import annotations

import gzip
import io
import time

import imagefiles
import pytest
from crawl_site import Route, serve_site
from PIL import Image

from index.errors import LabelchatError
from index.types import JobStatus
from tools import html_images as parse
from tools.crawl import CrawlOptions, CrawlProgress, crawl
from tools.robots import robots_tag_directives

LOCAL = ("127.0.0.1",)


def fast(**changes) -> CrawlOptions:
    """Options for a local site: only 127.0.0.1 allowed, no host delay, short timeouts."""
    base = dict(allow_hosts=LOCAL, host_delay_s=0.0, per_host=8, workers=8, timeout_s=0.5, max_retry_wait_s=2.0)
    return CrawlOptions(**{**base, **changes})


@pytest.fixture
def site():
    with serve_site() as s:
        yield s


# -- parsing, no network ------------------------------------------------------------------


def test_normalize_url_makes_one_key_per_resource():
    n = parse.normalize_url
    assert n("HTTP://Example.COM:80/a/b.jpg#x") == "http://example.com/a/b.jpg"
    assert n("https://example.com:443") == "https://example.com/"
    assert n("https://example.com:8443/p?b=2&a=1") == "https://example.com:8443/p?b=2&a=1"  # query order kept
    assert n("../img/c d.jpg", "http://x.org/a/b/page.html") == "http://x.org/a/img/c%20d.jpg"
    assert n("/café.jpg", "http://x.org/") == n("/caf%C3%A9.jpg", "http://x.org/")
    for bad in ("mailto:a@b.c", "javascript:void(0)", "data:image/gif;base64,R0l", "ftp://x.org/a", "", "http://u:p@x.org/"):
        assert n(bad, "http://x.org/") is None


def test_a_page_yields_every_kind_of_image_once_with_its_alt_text():
    html = """<html><head><title> The  gallery </title><base href="/media/">
      <meta property="og:image" content="og.jpg"><meta property="og:image:alt" content="cover">
      <meta name="twitter:image" content="https://cdn.example/tw.jpg"></head><body>
      <img src="a.jpg" alt=" a  cat " title="A">
      <img src="b-400.jpg" srcset="b-400.jpg 400w, b-800.jpg 800w, b-600.jpg 600w">
      <img src="data:image/gif;base64,R0lGOD" data-src="lazy.jpg">
      <img data-srcset="x1.jpg, x2.jpg 2x">
      <img class="lazy" data-original="orig.jpg">
      <picture><source srcset="p-600.webp 600w, p-1200.webp 1200w" type="image/webp">
               <source srcset="p-900.jpg 900w"><img src="p.jpg" alt="pic"></picture>
      <a href="/full/big.png" title="full">the <b>big</b> one</a>
      <a href="/gallery/thumb-link.jpg"><img src="thumb.jpg" alt="inner alt"></a>
      <a href="/page2.html#top">next</a> <a href="mailto:me@x">mail</a> <a href="javascript:go()">js</a>
      <a href="a.jpg">the same image again</a>
    </body></html>"""
    page = parse.parse_page(html, "http://site.test/dir/index.html")
    got = {i.url.rsplit("/", 2)[-2] + "/" + i.url.rsplit("/", 1)[-1]: (i.alt, i.title) for i in page.images}
    assert got == {
        "media/a.jpg": ("a cat", "A"),
        "media/b-800.jpg": (None, None),
        "media/lazy.jpg": (None, None),
        "media/x2.jpg": (None, None),
        "media/orig.jpg": (None, None),
        "media/p-1200.webp": ("pic", None),
        "full/big.png": ("the big one", "full"),
        "media/thumb.jpg": ("inner alt", None),
        "gallery/thumb-link.jpg": ("inner alt", None),
        "media/og.jpg": ("cover", None),
        "cdn.example/tw.jpg": ("cover", None),
    }
    assert page.links == ["http://site.test/page2.html"]
    assert not page.noimageindex and not page.nofollow


def test_meta_robots_and_x_robots_tag_are_read():
    page = parse.parse_page('<meta name="robots" content="noimageindex, NOFOLLOW"><img src="a.jpg">', "http://x.org/")
    assert page.noimageindex and page.nofollow
    assert robots_tag_directives("noindex, nofollow") == {"noindex", "nofollow"}
    assert robots_tag_directives("googlebot: noindex") == frozenset()
    assert robots_tag_directives("labelchat: noimageindex, otherbot: none") == {"noimageindex"}
    assert robots_tag_directives("unavailable_after: 25 Jun 2010 15:00:00 PST") == {"unavailable_after: 25 jun 2010 15:00:00 pst"}


def test_pages_in_legacy_encodings_are_decoded():
    latin = '<meta charset="iso-8859-1"><img src="c.jpg" alt="Café crème">'.encode("latin-1")
    assert "Café crème" in parse.decode_html(latin, "text/html")
    assert "Café" in parse.decode_html("<p>Café</p>".encode("latin-1"), "text/html; charset=ISO-8859-1")
    assert "Café" in parse.decode_html("<p>Café</p>".encode("latin-1"), None)  # undeclared, not UTF-8: cp1252
    assert parse.decode_html("<p>Café</p>".encode(), "text/html; charset=bogus-charset") == "<p>Café</p>"


def test_sitemaps_and_indexes_are_parsed_leniently():
    index = '<?xml version="1.0"?><sitemapindex><sitemap><loc> http://x.org/s1.xml </loc></sitemap></sitemapindex>'
    assert parse.parse_sitemap(index, "http://x.org/").sitemaps == ["http://x.org/s1.xml"]
    urlset = """<urlset xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
      <url><loc>http://x.org/a?b=1&amp;c=2</loc><image:image><image:loc>http://x.org/i.jpg</image:loc></image:image></url>
      <url><loc><![CDATA[http://x.org/b]]></loc></url></urlset>"""
    found = parse.parse_sitemap(urlset, "http://x.org/")
    assert found.pages == ["http://x.org/a?b=1&c=2", "http://x.org/b"] and found.images == ["http://x.org/i.jpg"]
    assert parse.parse_url_list("# c\nhttp://x.org/1.jpg\nnot a url\nid,http://x.org/2.jpg\n") == ["http://x.org/1.jpg", "http://x.org/2.jpg"]


# -- the troubled site ----------------------------------------------------------------------


def _noise_big() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((800, 800), 100).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def build_troubled_site(site, photos_dir) -> None:
    """A home page with one image of every kind of trouble, and pages around it."""
    other = site.url("", host="127.0.0.2")
    site.file("/robots.txt", b"User-agent: *\nDisallow: /private/\n", "text/plain")
    site.page("/", f"""<html><head><title>Home</title>
      <meta property="og:image" content="/img/og.jpg"><meta name="twitter:image" content="{site.url('/img/tw.jpg')}">
      </head><body>
      <img src="img/a.jpg" alt="a red square" title="A">
      <img src="/img/b-400.jpg" srcset="/img/b-400.jpg 400w, img/b-800.jpg 800w">
      <img src="data:image/gif;base64,R0lGOD" data-src="img/lazy.jpg" alt="lazy">
      <img data-srcset="img/lazy-1x.jpg 1x, img/lazy-2x.jpg 2x">
      <img class="lazy" data-original="img/orig.jpg">
      <picture><source srcset="img/pic-600.jpg 600w, img/pic-1200.jpg 1200w"><img src="img/pic-fallback.jpg" alt="picture alt"></picture>
      <a href="img/full.png" title="full">the full-size picture</a>
      <img src="img/a-copy.jpg"> <img src="img/tiny.png"> <img src="img/photo.html"> <img src="img/fake.jpg">
      <img src="img/truncated.jpg"> <img src="img/bomb.png"> <img src="img/missing.jpg"> <img src="slow/s.jpg">
      <img src="loop/1.jpg"> <img src="go/away.jpg"> <img src="{other}/img/other.jpg"> <img src="private/p.jpg">
      <img src="img/noindex.jpg"> <img src="img/big.jpg"> <img src="img/windmill.jpg"> <img src="img/windmill-small.jpg">
      <img src="img/animated.gif" alt="kept whole; models see the first frame">
      <a href="page2.html">2</a> <a href="/deep/1.html#top">deep</a> <a href="mailto:x@y.z">mail</a>
      <a href="javascript:void(0)">js</a> <a href="#top">top</a> <a href="{other}/elsewhere.html">off site</a>
      <a href="/private/secret.html">secret</a> <a href="/missing.html">gone</a> <a href="/latin.html">latin</a>
      <a href="/hidden.html">hidden</a> <a href="/base.html">base</a>
      </body></html>""")
    site.page("/page2.html", f'<a href="{site.url("/")}">home</a> <a href="deep/1.html">deep</a>'
                             f'<img src="{site.url("/img/a.jpg")}" alt="again"> <img src="./img/../img/p2.jpg">')
    site.page("/deep/1.html", '<a href="2.html">on</a> <img src="../img/d1.jpg">')
    site.page("/deep/2.html", '<a href="3.html">on</a> <img src="/img/d2.jpg">')
    site.page("/deep/3.html", '<img src="/img/d3.jpg">')  # depth 3: never read
    site.routes["/latin.html"] = Route(
        '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
        '<img src="img/cafe.jpg" alt="Café crème brûlée">'.encode("latin-1"), "text/html")
    site.page("/hidden.html", '<img src="img/hidden.jpg">', headers={"X-Robots-Tag": "noimageindex"})
    site.page("/base.html", '<head><base href="/media/"></head><img src="c.jpg">')
    site.page("/private/secret.html", '<img src="/img/secret.jpg">')
    for seed, name in enumerate(["a", "b-400", "b-800", "lazy", "lazy-1x", "lazy-2x", "orig", "pic-600", "pic-1200",
                                 "pic-fallback", "og", "tw", "p2", "d1", "d2", "d3", "cafe", "hidden", "secret"]):
        site.file(f"/img/{name}.jpg", imagefiles.jpeg(100 + seed))
    site.file("/media/c.jpg", imagefiles.jpeg(99))
    site.file("/img/full.png", imagefiles.png(98), "image/png")
    site.file("/img/a-copy.jpg", imagefiles.jpeg(100))  # the same bytes as a.jpg
    site.file("/img/tiny.png", imagefiles.png(97, (16, 16)), "image/png")
    site.file("/img/photo.html", imagefiles.jpeg(96), "text/html")  # the Content-Type lies
    site.file("/img/fake.jpg", b"<html><body>no picture here, sorry</body></html>", "image/jpeg")
    site.file("/img/truncated.jpg", imagefiles.truncated_jpeg(3))
    site.file("/img/bomb.png", imagefiles.bomb_png(), "image/png")
    site.file("/slow/s.jpg", imagefiles.jpeg(95), delay_s=1.5)
    site.redirect("/loop/1.jpg", "/loop/2.jpg")
    site.redirect("/loop/2.jpg", site.url("/loop/1.jpg"))
    site.redirect("/go/away.jpg", f"{other}/img/a.jpg")
    site.file("/private/p.jpg", imagefiles.jpeg(94))
    site.file("/img/noindex.jpg", imagefiles.jpeg(93), headers={"X-Robots-Tag": "noindex"})
    site.file("/img/big.jpg", _noise_big())
    windmill = next(photos_dir.glob("windmill/*.jpg"))
    site.file("/img/windmill.jpg", windmill.read_bytes())
    with Image.open(windmill) as image:
        buffer = io.BytesIO()
        image.resize((image.width // 2, image.height // 2)).save(buffer, "JPEG", quality=80)
    site.file("/img/windmill-small.jpg", buffer.getvalue())
    frames = [imagefiles.noise_image(seed, (64, 48)).convert("P") for seed in (80, 81, 82)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    site.file("/img/animated.gif", animated.getvalue(), "image/gif")


EXPECTED = {
    "saved": 18, "read": 7, "blocked by robots": 3, "HTTP error": 2, "refused address": 2, "duplicate": 1,
    "too small": 1, "not an image": 1, "corrupt image": 1, "too many pixels": 1, "timeout": 1,
    "too many redirects": 1, "too large": 1,
}


def test_a_troubled_site_gives_exact_counts_by_outcome(project, site, photos_dir):
    build_troubled_site(site, photos_dir)
    report = crawl(project, [site.url("/")], fast(max_bytes=200_000))
    assert report.counts == EXPECTED
    assert (report.stopped, report.queued, report.off_site_links) == ("finished", 0, 1)
    assert len(report.new_item_ids) == project.store.item_count() == 18
    assert len(report.near_duplicates) == 1
    store = project.store
    outcomes = {u.url.split(str(site.port), 1)[-1]: (u.status, u.detail) for u in store.crawl_urls(report.job_id)}
    assert outcomes["/img/big.jpg"][0] == "too large" and "200,000" in outcomes["/img/big.jpg"][1]
    assert "redirect loop" in outcomes["/loop/1.jpg"][1]
    assert "127.0.0.2" in outcomes["/go/away.jpg"][1] and "--allow-private" in outcomes["/go/away.jpg"][1]
    assert outcomes["/img/noindex.jpg"] == ("blocked by robots", "X-Robots-Tag: noindex")
    assert "robots.txt" in outcomes["/private/p.jpg"][1]
    assert "HTTP 404" in outcomes["/img/missing.jpg"][1]
    assert "1 images not taken" in outcomes["/hidden.html"][1]
    assert outcomes["/img/photo.html"][0] == "saved" and outcomes["/img/fake.jpg"][0] == "not an image"
    for never in ["/img/b-400.jpg", "/img/pic-600.jpg", "/img/pic-fallback.jpg", "/img/lazy-1x.jpg",
                  "/img/hidden.jpg", "/deep/3.html", "/img/d3.jpg", "/img/secret.jpg", "/private/secret.html"]:
        assert site.hits[never] == 0, never
    assert set(site.fetched().values()) == {1}  # nothing fetched twice, a.jpg on two pages included
    origins = {o.source.rsplit("/", 1)[-1]: o for item in store.items() for o in store.origins(item.id)}
    assert (origins["a.jpg"].alt_text, origins["a.jpg"].title, origins["a.jpg"].page_url) == ("a red square", "A", site.url("/"))
    assert origins["cafe.jpg"].alt_text == "Café crème brûlée"
    assert origins["full.png"].alt_text == "the full-size picture"
    animated = store.get_item(next(u.item_id for u in store.crawl_urls(report.job_id) if u.url.endswith(".gif")))
    with Image.open(project.media.path(animated.media_path)) as stored:
        assert (stored.format, stored.n_frames) == ("GIF", 3)  # kept whole
    assert origins["a-copy.jpg"].source.endswith("/img/a-copy.jpg")  # the duplicate's source is recorded
    assert store.latest_job("crawl").status is JobStatus.DONE


def test_private_addresses_are_refused_unless_allowed(project, site):
    site.page("/", '<img src="a.jpg">')
    report = crawl(project, [site.url("/")], fast(allow_hosts=()))
    assert report.counts == {"refused address": 1} and not site.hits
    site.file("/a.jpg", imagefiles.jpeg(1))
    again = crawl(project, [site.url("/")], fast(allow_hosts=(), allow_private=True))
    assert again.counts == {"read": 1, "saved": 1}


def test_a_refused_connection_and_a_broken_redirect_are_outcomes_not_crashes(project, site):
    import socket

    from tools.robots import Fetcher, FetchFailed, HostGate, Outcome, WireOptions

    site.page("/", '<img src="/moved.jpg">')
    site.redirect("/moved.jpg", "http://[::1")  # an unbalanced bracket: no URL at all
    report = crawl(project, [site.url("/")], fast())
    assert report.counts == {"read": 1, "download failed": 1}
    moved = next(u for u in project.store.crawl_urls(report.job_id) if u.url.endswith("/moved.jpg"))
    assert "not an http(s) URL" in moved.detail

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    fetcher = Fetcher(WireOptions(retries=0, allow_private=True), HostGate(1, 0.0))
    with pytest.raises(FetchFailed) as failed:
        fetcher.get(f"http://127.0.0.1:{port}/a.jpg", lambda first, kind: 1000, robots=False)
    assert failed.value.outcome is Outcome.DOWNLOAD_FAILED and "refused" in failed.value.detail.lower()
    # a site that does not answer is not "blocked by robots": its robots.txt could not be read
    report = crawl(project, [f"http://127.0.0.1:{port}/"], fast(retries=0))
    assert report.counts == {"download failed": 1}
    (start,) = [u for u in project.store.crawl_urls(report.job_id)]
    assert "robots.txt could not be read" in start.detail and "refused" in start.detail.lower()


def test_a_robots_txt_that_fails_with_a_server_error_closes_the_site(project, site):
    site.page("/", '<img src="a.jpg">')
    site.file("/a.jpg", imagefiles.jpeg(1))
    site.page("/robots.txt", "busy", status=503)
    report = crawl(project, [site.url("/")], fast(retries=0))
    assert report.counts == {"HTTP error": 1} and site.hits["/a.jpg"] == 0
    (start,) = project.store.crawl_urls(report.job_id)
    assert "treated as closed to crawlers" in start.detail and "503" in start.detail


# -- sitemaps and URL lists ------------------------------------------------------------------


def test_a_sitemap_index_leads_to_sitemaps_pages_and_images(project, site):
    site.page("/sitemap_index.xml", f"""<?xml version="1.0"?><sitemapindex>
        <sitemap><loc>{site.url('/sitemaps/pages.xml')}</loc></sitemap>
        <sitemap><loc>{site.url('/sitemaps/images.xml.gz')}</loc></sitemap></sitemapindex>""", content_type="application/xml")
    site.page("/sitemaps/pages.xml", f"""<urlset><url><loc>{site.url('/s/1.html')}</loc></url>
        <url><loc>{site.url('/s/2.html')}</loc></url><url><loc>{site.url('/s/3.html')}?a=1&amp;b=2</loc></url></urlset>""",
              content_type="text/xml")
    images = f"""<urlset xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"><url><loc>{site.url('/s/1.html')}</loc>
        <image:image><image:loc>{site.url('/img/sm.jpg')}</image:loc></image:image></url></urlset>"""
    site.file("/sitemaps/images.xml.gz", gzip.compress(images.encode()), "application/gzip")
    for n in (1, 2, 3):
        site.page(f"/s/{n}.html", f'<img src="/img/s{n}.jpg"> <a href="/s/other.html">other</a>')
        site.file(f"/img/s{n}.jpg", imagefiles.jpeg(n))
    site.file("/img/sm.jpg", imagefiles.jpeg(10))
    report = crawl(project, [site.url("/sitemap_index.xml")], fast(depth=0))
    assert report.counts == {"read": 6, "saved": 4}
    assert site.hits["/s/other.html"] == 0  # depth 0: sitemap entries are starts, their links are not followed


def test_url_lists_local_and_remote_are_read(project, site, tmp_path):
    site.file("/img/l1.jpg", imagefiles.jpeg(1))
    site.page("/l/page.html", '<img src="/img/l2.jpg">')
    site.file("/img/l2.jpg", imagefiles.jpeg(2))
    site.file("/lists/more.txt", f"not a url\n{site.url('/img/l3.jpg')}\n".encode(), "text/plain")
    site.file("/img/l3.jpg", imagefiles.jpeg(3))
    site.file("/l/photo", imagefiles.jpeg(4))  # no extension: queued as a page, sniffed as an image
    site.file("/l/doc.pdf", b"%PDF-1.4 not a page, not an image", "application/pdf")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# my list\n{site.url('/img/l1.jpg')}\n{site.url('/l/page.html')}\n"
                       f"{site.url('/lists/more.txt')}\nftp://127.0.0.1/x.jpg\n{site.url('/l/photo')}\n{site.url('/l/doc.pdf')}\n")
    report = crawl(project, [str(listing), str(tmp_path / "missing.txt")], fast())
    assert report.counts == {"saved": 4, "read": 2, "not a page": 1}
    assert [p.source for p in report.problems] == [str(tmp_path / "missing.txt")]


# -- politeness and retries --------------------------------------------------------------------


def _gallery(site, n: int, *, delay_s: float = 0.0, seed: int = 0) -> str:
    site.page("/", "".join(f'<img src="/img/{i}.jpg">' for i in range(n)) + '<a href="/more.html">more</a>')
    site.page("/more.html", "".join(f'<img src="/img/m{i}.jpg">' for i in range(5)))
    for i in range(n):
        site.file(f"/img/{i}.jpg", imagefiles.jpeg(seed + i), delay_s=delay_s)
    for i in range(5):
        site.file(f"/img/m{i}.jpg", imagefiles.jpeg(seed + 1000 + i), delay_s=delay_s)
    return site.url("/")


def test_per_host_concurrency_and_delay_are_kept(project, site):
    start = _gallery(site, 10, delay_s=0.05)
    report = crawl(project, [start], fast(workers=8, per_host=2, host_delay_s=0.03))
    assert report.counts == {"saved": 15, "read": 2}
    assert site.max_active <= 2
    starts = sorted(site.starts)
    assert starts[-1] - starts[0] >= 0.8 * 0.03 * (len(starts) - 2)  # robots.txt rides on the first slot
    assert {agent.split("/")[0] for agent in site.agents} == {"labelchat"}


def test_retries_honour_retry_after_within_bounds(project, site):
    site.page("/", '<img src="/a.jpg"><img src="/b.jpg"><img src="/c.jpg">')
    site.file("/a.jpg", imagefiles.jpeg(1), fail_first=1, retry_after="1")  # one 503, then the image
    site.file("/b.jpg", imagefiles.jpeg(2), fail_first=99, retry_after="3600")  # too long to wait
    site.file("/c.jpg", imagefiles.jpeg(3), fail_first=99)  # always 503: gives up after the retries
    began = time.monotonic()
    report = crawl(project, [site.url("/")], fast(retries=1))
    assert report.counts == {"saved": 1, "read": 1, "HTTP error": 2}
    assert (site.hits["/a.jpg"], site.hits["/b.jpg"], site.hits["/c.jpg"]) == (2, 1, 2)
    waited = time.monotonic() - began
    assert waited >= 1.0  # Retry-After: 1 was honoured
    assert waited < 60  # Retry-After: 3600 was not (a loose bound: no timing flake under load)
    details = {u.url.rsplit("/", 1)[-1]: u.detail for u in project.store.crawl_urls(report.job_id)}
    assert "Retry-After 3600 s" in details["b.jpg"] and "after 2 tries" in details["c.jpg"]


# -- limits ----------------------------------------------------------------------------------------


def test_max_images_is_exact_and_fetches_no_more(project, site):
    report = crawl(project, [_gallery(site, 10)], fast(max_images=3, workers=4))
    assert (report.stopped, report.counts) == ("max images", {"saved": 3, "read": 1})
    assert sum(site.fetched().values()) == 4


def test_max_pages_depth_and_include_exclude(project, site):
    site.page("/", '<a href="/a/1.html">1</a><a href="/b/1.html">2</a><img src="/thumbs/t.jpg"><img src="/img/i.jpg">')
    site.page("/a/1.html", '<a href="/a/2.html">2</a><img src="/img/a1.jpg">')
    site.page("/a/2.html", '<img src="/img/a2.jpg">')
    for name, seed in [("/thumbs/t.jpg", 1), ("/img/i.jpg", 2), ("/img/a1.jpg", 3), ("/img/a2.jpg", 4)]:
        site.file(name, imagefiles.jpeg(seed))
    report = crawl(project, [site.url("/")], fast(exclude=("*/thumbs/*", "/b/")))
    assert report.counts == {"saved": 3, "read": 3}
    assert site.hits["/thumbs/t.jpg"] == site.hits["/b/1.html"] == 0
    limited = crawl(project, [site.url("/")], fast(max_pages=2, include=("/a/", "*.jpg")))
    assert limited.counts == {"read": 2, "saved": 1, "duplicate": 2}
    assert (limited.stopped, limited.queued) == ("max pages", 1)  # /a/2.html
    shallow = crawl(project, [site.url("/")], fast(depth=0))
    assert shallow.counts == {"read": 1, "duplicate": 2}


def test_time_limit_stops_the_run_and_leaves_the_rest_queued(project, site):
    start = _gallery(site, 8, delay_s=0.2)
    report = crawl(project, [start], fast(workers=1, time_limit_s=0.5))
    assert report.stopped == "time limit" and report.queued > 0
    assert report.elapsed_s < 2


# -- resume --------------------------------------------------------------------------------------


def test_a_stopped_crawl_resumes_and_fetches_nothing_twice(project, site):
    start = _gallery(site, 10)
    seen: list[CrawlProgress] = []
    first = crawl(project, [start], fast(workers=2), on_progress=seen.append,
                  should_stop=lambda: bool(seen) and seen[-1].images >= 4)
    assert first.stopped == "stopped" and first.queued > 0 and 4 <= first.saved < 15
    assert project.store.latest_job("crawl").status is JobStatus.CANCELLED
    second = crawl(project, [], fast(workers=2), resume=True)
    assert (second.job_id, second.resumed, second.stopped) == (first.job_id, True, "finished")
    assert second.counts == {"saved": 15, "read": 2} and second.queued == 0
    assert len(first.new_item_ids) + len(second.new_item_ids) == project.store.item_count() == 15
    assert set(site.fetched().values()) == {1} and sum(site.fetched().values()) == 17
    assert seen[-1].bytes > 0 and seen[-1].errors == 0


def test_an_interrupted_crawl_resumes_where_it_stopped(project, site):
    start = _gallery(site, 6)

    def interrupt(progress: CrawlProgress) -> None:
        if progress.images >= 3:  # a round may record more than one image
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        crawl(project, [start], fast(workers=1), on_progress=interrupt)
    assert project.store.latest_job("crawl").status is JobStatus.FAILED
    report = crawl(project, [], fast(workers=1), resume=True)
    assert report.counts == {"saved": 11, "read": 2}
    assert set(site.fetched().values()) == {1}


def test_resume_without_a_crawl_and_bad_options_are_explained(project):
    with pytest.raises(LabelchatError, match="no crawl to resume"):
        crawl(project, [], resume=True)
    with pytest.raises(LabelchatError, match="--workers"):
        crawl(project, ["http://127.0.0.1:9/"], CrawlOptions(workers=0))


# -- addresses: every spelling of a private address is refused; connections go where the check looked --------

REFUSED = {
    "64:ff9b::a9fe:a9fe": "NAT64 form of 169.254.169.254",
    "64:ff9b::7f00:1": "NAT64 form of 127.0.0.1",
    "64:ff9b:1::a9fe:a9fe": "local-use NAT64 form of 169.254.169.254",
    "::127.0.0.1": "IPv4-compatible form of 127.0.0.1",
    "::8.8.8.8": "deprecated IPv4-compatible form of 8.8.8.8",
    "2002:a9fe:a9fe::": "6to4 form of 169.254.169.254",
    "2002:7f00:1::": "6to4 form of 127.0.0.1",
    "::ffff:0:a9fe:a9fe": "IPv4-translated form of 169.254.169.254",
    "::ffff:127.0.0.1": "IPv4-mapped form of 127.0.0.1",
    "::ffff:10.0.0.1": "IPv4-mapped form of 10.0.0.1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo client form of 127.0.0.1",  # client = last 32 bits XOR 1s
    "2001:0:7f00:1:8000:63bf:f7f7:f7f7": "Teredo server form of 127.0.0.1",
    "64:ff9b::c000:205": "NAT64 form of 192.0.2.5, documentation",  # decodes, but to a documentation address
    "2002:c633:6401::": "6to4 form of 198.51.100.1, documentation",
    "127.0.0.1": "loopback", "10.1.2.3": "private", "172.31.0.1": "private", "192.168.1.1": "private",
    "169.254.169.254": "link-local", "100.64.0.1": "shared", "0.0.0.0": "unspecified", "224.0.0.1": "multicast",
    "240.0.0.1": "reserved", "255.255.255.255": "reserved", "192.0.2.1": "documentation", "203.0.113.9": "documentation",
    "198.18.0.1": "benchmarks", "::1": "loopback", "::": "unspecified", "fe80::1%eth0": "link-local",
    "fc00::1": "unique local", "fd12:3456::1": "unique local", "ff02::1": "multicast", "2001:db8::1": "documentation",
    "3fff::1": "documentation", "100::1": "discard-only", "2001:2::1": "IETF protocols", "4000::1": "reserved",
}
ALLOWED = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8",
           "64:ff9b::8.8.8.8", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"]


@pytest.mark.parametrize("address", list(REFUSED))
def test_every_form_of_a_non_public_address_is_refused(address):
    from tools.addresses import refusal

    assert REFUSED[address] in (refusal(address) or "allowed")


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_in_any_form_are_allowed(address):
    from tools.addresses import refusal

    assert refusal(address) is None


def test_a_redirect_to_any_embedded_private_address_is_refused_before_connecting(project, site):
    forms = [a for a in REFUSED if ":" in a and "%" not in a]
    site.page("/", "".join(f'<img src="/r/{n}.jpg">' for n in range(len(forms))))
    for n, address in enumerate(forms):
        site.redirect(f"/r/{n}.jpg", f"http://[{address}]:{site.port}/a.jpg")
    report = crawl(project, [site.url("/")], fast(timeout_s=5.0))
    assert report.counts == {"read": 1, "refused address": len(forms)}  # a connection would be "download failed"
    details = {u.url.rsplit("/", 1)[-1]: u.detail for u in project.store.crawl_urls(report.job_id)}
    assert "NAT64 form of 169.254.169.254" in details[f"{forms.index('64:ff9b::a9fe:a9fe')}.jpg"]
    assert site.hits["/a.jpg"] == 0


def _lookups(answers: list[str]):
    """A resolver that answers each item of `answers` in turn (DNS rebinding), counting calls."""
    calls = []

    def resolver(host, port):
        calls.append(host)
        return [answers[min(len(calls), len(answers)) - 1]]

    return resolver, calls


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_fetched(site, monkeypatch):
    import socket

    from tools.robots import Fetcher, FetchFailed, HostGate, Outcome, WireOptions

    site.file("/a.jpg", imagefiles.jpeg(1))
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"] + ["127.0.0.1"] * 10)  # public for the check, loopback afterwards

    def rebinding(host, port, *args, **kwargs):  # the system resolver, as a rebinding DNS server answers
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        return real(next(answers), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    fetcher = Fetcher(WireOptions(retries=0, timeout_s=0.5), HostGate(1, 0.0))
    for _ in range(2):
        with pytest.raises(FetchFailed) as failed:
            fetcher.get(f"http://rebind.test:{site.port}/a.jpg", lambda first, kind: 10**6, robots=False)
        # it connected where it checked: to the public address, which the suite's guard stops
        assert failed.value.outcome is Outcome.DOWNLOAD_FAILED and "93.184.216.34" in failed.value.detail
    assert next(answers) == "127.0.0.1" and site.hits["/a.jpg"] == 0  # looked up once; loopback never reached

    # the same with an injected resolver: the second answer is never asked for
    resolver, calls = _lookups(["93.184.216.34", "127.0.0.1"])
    fetcher = Fetcher(WireOptions(retries=1, timeout_s=0.5), HostGate(1, 0.0), resolver=resolver)
    with pytest.raises(FetchFailed):
        fetcher.get(f"http://rebind.test:{site.port}/a.jpg", lambda first, kind: 10**6, robots=False)
    assert calls == ["rebind.test"] and site.hits["/a.jpg"] == 0
    # and a name whose first answer is loopback is refused, with the address named
    resolver, calls = _lookups(["127.0.0.1"])
    fetcher = Fetcher(WireOptions(retries=0), HostGate(1, 0.0), resolver=resolver)
    with pytest.raises(FetchFailed) as failed:
        fetcher.get(f"http://rebind.test:{site.port}/a.jpg", lambda first, kind: 10**6, robots=False)
    assert failed.value.outcome is Outcome.REFUSED_ADDRESS and "rebind.test resolves to 127.0.0.1: loopback" in failed.value.detail


def test_https_goes_to_the_checked_address_with_the_host_name_for_sni_and_the_certificate(tmp_path):
    import ssl

    import trustme
    from crawl_site import CrawlSite, _handler, _QuietServer
    from http_site import running

    from tools.robots import Fetcher, FetchFailed, HostGate, WireOptions

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("pinned.test").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)
    site = CrawlSite()
    site.file("/a.jpg", imagefiles.jpeg(1))
    server = _QuietServer(("127.0.0.1", 0), _handler(site))
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    site.port = server.server_address[1]
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    resolver, calls = _lookups(["127.0.0.1"])
    with running(server, poll_interval=0.05):
        fetcher = Fetcher(WireOptions(retries=0, allow_hosts=("pinned.test", "other.test")), HostGate(1, 0.0),
                          resolver=resolver, ssl_context=client_context)
        fetched = fetcher.get(f"https://pinned.test:{site.port}/a.jpg", lambda first, kind: 10**6, robots=False)
        assert fetched.body == imagefiles.jpeg(1) and names == ["pinned.test"]
        with pytest.raises(FetchFailed) as failed:  # the certificate is checked against the name, not the address
            fetcher.get(f"https://other.test:{site.port}/a.jpg", lambda first, kind: 10**6, robots=False)
        assert "doesn't match 'pinned.test'" in failed.value.detail and site.hits["/a.jpg"] == 1
        fetcher.close()


# -- robots.txt as RFC 9309 reads it ------------------------------------------------------------------


def test_robots_txt_longest_match_wins_allow_on_a_tie_and_our_group_before_the_star(project, site):
    site.file("/robots.txt", b"""User-agent: *
Disallow: /

user-agent: LabelChat   # our product token, any case
Allow: /
Disallow: /img/
Allow: /img/ok/
Disallow: /*.gif$
Allow: /same
Disallow: /same
Disallow: /%62ad/
""", "text/plain")
    names = ["img/a.jpg", "img/ok/b.jpg", "p/c.gif", "p/c.gif?v=1", "same.jpg", "bad/d.jpg", "img/ok/e.gif"]
    site.page("/", "".join(f'<img src="/{name}">' for name in names))
    for n, name in enumerate(names):
        site.file("/" + name.split("?")[0], imagefiles.jpeg(n + 1))
    report = crawl(project, [site.url("/")], fast())
    outcomes = {u.url.split(str(site.port) + "/", 1)[-1]: u.status for u in project.store.crawl_urls(report.job_id)}
    assert outcomes == {
        "": "read",  # Allow: / in our group; the * group would shut the site
        "img/a.jpg": "blocked by robots",  # Disallow /img/ is longer than Allow /
        "img/ok/b.jpg": "saved",  # Allow /img/ok/ is longer still
        "p/c.gif": "blocked by robots",  # * and $
        "p/c.gif?v=1": "saved",  # $ anchors the end: a query is more
        "same.jpg": "saved",  # Allow and Disallow of the same length: Allow
        "bad/d.jpg": "blocked by robots",  # %62 is b: percent-encoding normalised
        "img/ok/e.gif": "saved",  # /img/ok/ (8 octets) beats /*.gif$ (7)
    }


def test_relative_sitemap_locations_are_resolved_on_the_sitemaps_host_and_noted(project, site):
    site.page("/maps/sitemap.xml", """<urlset><url><loc>/s/1.html</loc></url><url><loc>2.html</loc></url>
        <url><loc>//elsewhere.example/x.html</loc></url></urlset>""", content_type="application/xml")
    site.file("/robots.txt", b"User-agent: *\nAllow: /\nSitemap: /maps/sitemap.xml\n", "text/plain")
    site.page("/s/1.html", '<img src="/img/1.jpg">')
    site.page("/maps/2.html", '<img src="/img/2.jpg">')
    for n in (1, 2):
        site.file(f"/img/{n}.jpg", imagefiles.jpeg(n))
    report = crawl(project, [site.url("/robots.txt")], fast(depth=1))  # a robots.txt as a start: its Sitemap lines
    assert report.counts == {"read": 4, "saved": 2}
    sitemap = next(u for u in project.store.crawl_urls(report.job_id) if u.url.endswith("sitemap.xml"))
    assert "3 relative locations resolved against" in sitemap.detail and "1 of them left out" in sitemap.detail
