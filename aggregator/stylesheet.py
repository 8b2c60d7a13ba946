"""feed.xsl: what a browser shows when someone opens atom.xml or rss.xml directly.

Feed readers and validators ignore `<?xml-stylesheet?>`; browsers apply it (over http, from
the same origin) and show a readable page with the subscribe address instead of raw XML.
XSLT 1.0 only, no disable-output-escaping (Firefox ignores it): summaries are plain text.
"""

FEED_XSL = """<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:variable name="title" select="atom:feed/atom:title | rss/channel/title"/>
    <html lang="tr">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (akış)</title>
        <style>
          :root { color-scheme: light dark; --soft: #6e6e73; --line: #e5e5ea;
                  --accent: #a4161a; }
          body { font: 17px/1.55 system-ui, sans-serif; max-width: 46rem; margin: 0 auto;
                 padding: 1.5rem 1rem 4rem; }
          .note { border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem;
                  background: rgba(164, 22, 26, .06); }
          code { font-size: .85em; word-break: break-all; }
          ol { list-style: none; padding: 0; }
          li { border-top: 1px solid var(--line); padding: .9rem 0; }
          li a { font-weight: 600; font-size: 1.08rem; color: inherit; }
          .when { color: var(--soft); font-size: .88rem; }
          .sum { margin: .3rem 0 0; }
          nav a { color: var(--accent); }
        </style>
      </head>
      <body>
        <nav><a href="{concat(atom:feed/atom:link[@rel='alternate']/@href,
            rss/channel/link, 'index.html')}">Tüm akışlar</a></nav>
        <h1><xsl:value-of select="$title"/></h1>
        <p class="note">Bu sayfa bir haber akışıdır (<xsl:choose>
          <xsl:when test="atom:feed">Atom</xsl:when><xsl:otherwise>RSS</xsl:otherwise>
          </xsl:choose>). Haberleri takip etmek için bu adresi akış okuyucunuza ekleyin:
          <br/><code><xsl:value-of select="atom:feed/atom:link[@rel='self']/@href
            | rss/channel/atom:link[@rel='self']/@href"/></code></p>
        <ol>
          <xsl:apply-templates select="atom:feed/atom:entry | rss/channel/item"/>
        </ol>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li>
      <a href="{atom:link[not(@rel) or @rel='alternate']/@href}">
        <xsl:value-of select="atom:title"/></a>
      <div class="when">
        <xsl:value-of select="substring(atom:published, 1, 10)"/>
        <xsl:text> </xsl:text>
        <xsl:value-of select="substring(atom:published, 12, 5)"/>
        <xsl:if test="atom:author/atom:name">
          · <xsl:value-of select="atom:author/atom:name"/></xsl:if>
      </div>
      <p class="sum"><xsl:value-of select="atom:summary"/></p>
    </li>
  </xsl:template>

  <xsl:template match="item">
    <li>
      <a href="{link}"><xsl:value-of select="title"/></a>
      <div class="when">
        <xsl:value-of select="pubDate"/>
        <xsl:if test="dc:creator"> · <xsl:value-of select="dc:creator"/></xsl:if>
      </div>
      <p class="sum"><xsl:value-of select="description"/></p>
    </li>
  </xsl:template>
</xsl:stylesheet>
"""
