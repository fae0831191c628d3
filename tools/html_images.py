"""Reading what a crawl fetched: HTML pages, sitemaps and URL lists, with no I/O.

Everything here is a pure function of bytes or text, tested without a server.
URLs come out absolute and normalised (`normalize_url`): the key the crawl
frontier deduplicates on. `read_document` turns one fetched document into the
frontier entries a crawl takes from it, within its `Scope` (robots.py).

Images found on a page, one per element:
  <img>: the largest candidate of srcset / data-srcset, else data-src,
         data-original or data-lazy-src (lazy loaders put a placeholder in src),
         else src;
  <picture>: the largest candidate among its <source srcset> and its <img>;
  <meta property="og:image"> and name="twitter:image";
  <a href> whose path ends in an image extension (its text or inner alt as alt).
"""

from __future__ import annotations

import codecs
import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from index.types import CrawlUrl

from .robots import Scope

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
LIST_EXTENSIONS = (".txt", ".csv", ".tsv", ".urls")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src", "data-lazy")
_META_IMAGES = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what requests leaves alone when it re-quotes a URL
_TEXT_LIMIT = 500  # characters of alt text or link text kept


@dataclass(frozen=True)
class FoundImage:
    url: str  # absolute, normalised
    alt: str | None = None
    title: str | None = None


@dataclass
class Page:
    """What one HTML page offers a crawl."""

    images: list[FoundImage] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # absolute, normalised, in page order
    noimageindex: bool = False  # from <meta name="robots">
    nofollow: bool = False


@dataclass
class Sitemap:
    sitemaps: list[str] = field(default_factory=list)  # from a sitemap index
    pages: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # <image:loc> of image sitemaps
    relative: int = 0  # locations written relative to the sitemap's URL, resolved against it
    off_host: int = 0  # relative locations that led to another host ("//other/x"), left out


# -- URLs ------------------------------------------------------------------------------


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Absolute http(s) URL in one canonical spelling, or None for anything else.

    Lowercases scheme and host, drops the fragment and a default port, turns an
    empty path into "/". The query is kept as written: servers may care about
    the order of its parameters, so sorting it could merge distinct URLs.
    """
    url = url.strip()
    if not url:
        return None
    try:
        absolute = urljoin(base, url) if base else url
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError:  # a bad port or an unbalanced IPv6 bracket
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username or parts.password:  # credentials never travel in a crawl URL
        return None
    path = quote(parts.path or "/", safe=_SAFE)  # as requests will send it: one key per resource
    return urlunsplit((scheme, netloc, path, quote(parts.query, safe=_SAFE), ""))


def site_of(url: str) -> str:
    """The host without a leading "www.": links are followed only within one site."""
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def has_image_extension(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)


def guess_kind(url: str) -> str:
    """The frontier kind of a start URL from its spelling; content decides later."""
    path = urlsplit(url).path.lower()
    if path.endswith((".xml", ".xml.gz")) or "sitemap" in path.rsplit("/", 1)[-1]:
        return "sitemap"
    if path.endswith(LIST_EXTENSIONS):
        return "list"
    return "image" if path.endswith(IMAGE_EXTENSIONS) else "page"


# -- decoding -------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)


def decode_html(body: bytes, content_type: str | None) -> str:
    """Text of a page: charset from the header, else from <meta>, else UTF-8, else cp1252.

    cp1252 is what browsers assume for undeclared legacy pages; it is a
    superset of latin-1, so no byte fails and an accented alt text survives.
    """
    for name in (_charset_param(content_type), _meta_charset(body)):
        if name and _known_codec(name):
            return body.decode(_known_codec(name), errors="replace").lstrip("\ufeff")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def _charset_param(content_type: str | None) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type or "", re.I)
    return match.group(1) if match else None


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii") if match else None


def _known_codec(name: str) -> str | None:
    name = name.lower()
    if name in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
        return "cp1252"  # the WHATWG encoding standard maps these labels to windows-1252
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


# -- HTML -------------------------------------------------------------------------------


def parse_page(text: str, page_url: str) -> Page:
    """Images, links and robots hints of one page; never raises on bad markup."""
    parser = _PageParser()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # html.parser is lenient; keep whatever was read if it gives up
        pass
    return parser.result(page_url)


def parse_srcset(value: str) -> list[tuple[str, float, str]]:
    """(url, size, unit) for each candidate; unit "w" (width) or "x" (density)."""
    found = []
    for candidate in re.split(r",\s+|,(?=\S+\s+\d)", value.strip()):
        pieces = candidate.strip().split()
        if not pieces:
            continue
        size, unit = 1.0, "x"
        if len(pieces) > 1:
            match = re.fullmatch(r"(\d+(?:\.\d+)?)([wx])", pieces[1].lower())
            if match:
                size, unit = float(match.group(1)), match.group(2)
        found.append((pieces[0].rstrip(","), size, unit))
    return found


def largest_candidate(candidates: list[tuple[str, float, str]]) -> str | None:
    """Widest "w" candidate if any has a width, else the highest density."""
    if not candidates:
        return None
    widths = [c for c in candidates if c[2] == "w"]
    return max(widths or candidates, key=lambda c: c[1])[0]


@dataclass
class _Raw:
    """An image found in the markup, before URLs are resolved against the base."""

    url: str
    alt: str | None = None
    title: str | None = None


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.images: list[_Raw] = []
        self.links: list[str] = []
        self.meta: dict[str, str] = {}
        self.robots: set[str] = set()
        self.picture: list[tuple[str, float, str]] | None = None
        self.anchor: tuple[_Raw, list[str]] | None = None  # an <a> that points at an image

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "img":
            self._img(a)
        elif tag == "picture":
            self.picture = []
        elif tag == "source" and self.picture is not None:
            self.picture += parse_srcset(a.get("srcset") or a.get("data-srcset") or "")
        elif tag in ("a", "area") and a.get("href"):
            self._anchor(tag, a)
        elif tag == "meta":
            self._meta(a)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "picture":
            if self.picture:  # a <picture> with no <img>
                self.images.append(_Raw(largest_candidate(self.picture) or ""))
            self.picture = None
        elif tag == "a" and self.anchor is not None:
            raw, text = self.anchor
            raw.alt = raw.alt or _clean(" ".join(text))
            self.images.append(raw)
            self.anchor = None

    def handle_data(self, data: str) -> None:
        if self.anchor is not None:
            self.anchor[1].append(data)

    def _img(self, a: dict[str, str]) -> None:
        alt, title = _clean(a.get("alt")), _clean(a.get("title"))
        if self.anchor is not None and alt:
            self.anchor[1].append(alt)
        srcset = parse_srcset(a.get("srcset", "")) + parse_srcset(a.get("data-srcset", ""))
        if self.picture is not None:  # <picture>: one image, the largest of all its sources
            candidates = self.picture + srcset + ([(a["src"], 1.0, "x")] if a.get("src") else [])
            self.images.append(_Raw(largest_candidate(candidates) or "", alt, title))
            self.picture = None
            return
        lazy = next((a[name] for name in _LAZY_SRC if a.get(name)), None)
        url = largest_candidate(srcset) or lazy or a.get("src")
        if url:
            self.images.append(_Raw(url, alt, title))

    def _anchor(self, tag: str, a: dict[str, str]) -> None:
        href = a["href"]
        if has_image_extension(href):
            raw = _Raw(href, None, _clean(a.get("title")))
            if tag == "area":
                raw.alt = _clean(a.get("alt"))
                self.images.append(raw)
            else:
                self.anchor = (raw, [])
        else:
            self.links.append(href)

    def _meta(self, a: dict[str, str]) -> None:
        key = (a.get("property") or a.get("name") or "").lower()
        content = a.get("content", "")
        if key in ("robots", "labelchat"):
            self.robots |= {t.strip().lower() for t in content.split(",")}
        elif key and content:
            self.meta.setdefault(key, content)

    def result(self, page_url: str) -> Page:
        if self.anchor is not None:  # an image link never closed
            self.handle_endtag("a")
        base = urljoin(page_url, self.base) if self.base else page_url
        page = Page()
        page.noimageindex = bool(self.robots & {"noimageindex", "none"})
        page.nofollow = bool(self.robots & {"nofollow", "none"})
        meta_alt = _clean(self.meta.get("og:image:alt") or self.meta.get("twitter:image:alt"))
        metas = [_Raw(self.meta[k], meta_alt, _clean(self.meta.get("og:title"))) for k in _META_IMAGES if k in self.meta]
        seen: set[str | None] = {None}  # each URL once: as an image if it is one anywhere on the page
        for raw in self.images + metas:
            if (url := normalize_url(raw.url, base)) not in seen:
                seen.add(url)
                page.images.append(FoundImage(url, raw.alt, raw.title))
        for url in (normalize_url(href, base) for href in self.links):
            if url not in seen:
                seen.add(url)
                page.links.append(url)
        return page


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text[:_TEXT_LIMIT] or None


# -- sitemaps and URL lists ----------------------------------------------------------------

_LOC = re.compile(r"<(?:[\w-]+:)?loc>\s*(.*?)\s*</(?:[\w-]+:)?loc>", re.S | re.I)
_IMAGE_LOC = re.compile(r"<image:loc>\s*(.*?)\s*</image:loc>", re.S | re.I)


def looks_like_sitemap(text: str) -> bool:
    head = text[:2048].lower()
    return "<urlset" in head or "<sitemapindex" in head


def parse_sitemap(text: str, sitemap_url: str) -> Sitemap:
    """Sitemap (urlset, with image:loc extensions) or sitemap index, read leniently.

    A regular expression rather than an XML parser: no entity expansion can
    blow up, and a sitemap with a stray ampersand still yields its URLs.
    """
    result = Sitemap()
    images = {m.group(1) for m in _IMAGE_LOC.finditer(text)}
    is_index = "<sitemapindex" in text[:4096].lower()
    for match in _LOC.finditer(text):
        raw = match.group(1)
        loc = html.unescape(raw.replace("<![CDATA[", "").replace("]]>", "")).strip()
        url = normalize_url(loc, sitemap_url)
        if url is None:
            continue
        if "://" not in loc:  # relative: resolved against the sitemap, and kept on its host
            result.relative += 1
            if site_of(url) != site_of(sitemap_url):
                result.off_host += 1
                continue
        if raw in images:
            result.images.append(url)
        elif is_index:
            result.sitemaps.append(url)
        else:
            result.pages.append(url)
    return result


def parse_url_list(text: str, list_url: str | None = None) -> list[str]:
    """http(s) URLs of a list: one a line, or the first URL-looking cell of a CSV/TSV row."""
    urls = []
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "sitemap" and list_url:  # a robots.txt's Sitemap: line, maybe relative
            url = normalize_url(value.strip(), list_url)
            if url and ("://" in value or site_of(url) == site_of(list_url)):
                urls.append(url)
            continue
        for cell in re.split(r"[,\t ]+", line):
            url = normalize_url(cell.strip("\"'"), list_url) if "://" in cell else None
            if url:
                urls.append(url)
                break
    return urls


# -- a fetched document, as frontier entries ------------------------------------------------


@dataclass
class Document:
    kind: str | None  # "sitemap", "page" or "list"; None: none of them
    found: list[CrawlUrl] = field(default_factory=list)
    detail: str = ""
    off_site: int = 0  # links left out because they leave the page's site


def read_document(
    url: CrawlUrl, final_url: str, text: str, content_type: str | None, robots: frozenset[str], scope: Scope
) -> Document:
    """What a crawl takes from a sitemap, an HTML page or a URL list; `robots` from X-Robots-Tag.

    Sitemap and list entries keep the depth of their list (they are starts);
    a page's images and links are one hop deeper.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if looks_like_sitemap(text):
        found = parse_sitemap(text, final_url)
        entries = sitemap_entries(found, url.depth, final_url)
        detail = f"sitemap: {len(entries)} URLs"
        if found.relative:
            detail += f"; {found.relative} relative locations resolved against {final_url}"
        if found.off_host:
            detail += f", {found.off_host} of them left out: they led to another host"
        return Document("sitemap", [e for e in entries if scope.wants(e.url)], detail)
    if "html" in media or text.lstrip()[:200].lower().startswith(("<!doctype html", "<html")):
        return _page_document(url, final_url, text, robots, scope)
    if media in ("text/plain", "text/csv", "text/tab-separated-values") or url.kind == "list":
        entries = [CrawlUrl(u, guess_kind(u), url.depth) for u in parse_url_list(text, final_url)]
        return Document("list", [e for e in entries if scope.wants(e.url)], f"URL list: {len(entries)} URLs")
    return Document(None, detail=f"the server sent {content_type or 'an untyped file'}, not HTML")


def sitemap_entries(found: Sitemap, depth: int, page_url: str | None) -> list[CrawlUrl]:
    entries = [CrawlUrl(u, "sitemap", depth) for u in found.sitemaps] + [CrawlUrl(u, "page", depth) for u in found.pages]
    return entries + [CrawlUrl(u, "image", depth, page_url=page_url) for u in found.images]


def _page_document(url: CrawlUrl, final_url: str, text: str, robots: frozenset[str], scope: Scope) -> Document:
    page = parse_page(text, final_url)
    doc = Document("page", detail=f"{len(page.images)} images, {len(page.links)} links")
    if page.noimageindex or robots & {"noindex", "noimageindex", "none"}:
        doc.detail += f"; robots: {len(page.images)} images not taken"
    else:
        doc.found += [CrawlUrl(i.url, "image", url.depth + 1, final_url, i.alt, i.title) for i in page.images]
    if page.nofollow or robots & {"nofollow", "none"}:
        doc.detail += f"; robots: {len(page.links)} links not followed"
    elif url.depth < scope.depth:
        site = site_of(url.url)
        followed = [link for link in page.links if not scope.same_site or site_of(link) == site]
        doc.off_site = len(page.links) - len(followed)
        doc.found += [CrawlUrl(link, "page", url.depth + 1, final_url) for link in followed]
    doc.found = [e for e in doc.found if scope.wants(e.url)]
    return doc
