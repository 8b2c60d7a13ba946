"""feed.xsl: what a browser shows when someone opens atom.xml or rss.xml directly.

Feed readers and validators ignore `<?xml-stylesheet?>`; browsers apply it (over http, from
the same origin) and show a readable page with the subscribe address instead of raw XML.
XSLT 1.0 only, no disable-output-escaping (Firefox ignores it): an HTML description is shown
as text (tags dropped, entities decoded, its first 600 characters) and dates in Turkish
(`1 Ocak 2026 Perşembe 19:16`, in the feed's own offset), like every other page. `aggregator
run` serves browsers an HTML view instead (pages.feed_view): browsers are removing XSLT; this
stays for static hosting.
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
        <xsl:call-template name="date">
          <xsl:with-param name="y" select="number(substring(atom:published, 1, 4))"/>
          <xsl:with-param name="m" select="number(substring(atom:published, 6, 2))"/>
          <xsl:with-param name="d" select="number(substring(atom:published, 9, 2))"/>
          <xsl:with-param name="hm" select="substring(atom:published, 12, 5)"/>
        </xsl:call-template>
        <xsl:if test="atom:author/atom:name">
          · <xsl:value-of select="atom:author/atom:name"/></xsl:if>
      </div>
      <p class="sum"><xsl:choose>
        <xsl:when test="atom:summary"><xsl:value-of select="atom:summary"/></xsl:when>
        <xsl:otherwise><xsl:call-template name="text">
          <xsl:with-param name="html" select="atom:content"/></xsl:call-template></xsl:otherwise>
      </xsl:choose></p>
    </li>
  </xsl:template>

  <xsl:template match="item">
    <li>
      <a href="{link}"><xsl:value-of select="title"/></a>
      <div class="when">
        <xsl:call-template name="date">
          <xsl:with-param name="y" select="number(substring(pubDate, 13, 4))"/>
          <xsl:with-param name="m" select="string-length(substring-before(
              'JanFebMarAprMayJunJulAugSepOctNovDec', substring(pubDate, 9, 3))) div 3 + 1"/>
          <xsl:with-param name="d" select="number(substring(pubDate, 6, 2))"/>
          <xsl:with-param name="hm" select="substring(pubDate, 18, 5)"/>
        </xsl:call-template>
        <xsl:if test="dc:creator"> · <xsl:value-of select="dc:creator"/></xsl:if>
      </div>
      <p class="sum"><xsl:call-template name="text">
        <xsl:with-param name="html" select="description"/></xsl:call-template></p>
    </li>
  </xsl:template>

  <!-- 1 Ocak 2026 Perşembe 19:16; the weekday by Sakamoto's method (0 = Sunday) -->
  <xsl:template name="date">
    <xsl:param name="y"/><xsl:param name="m"/><xsl:param name="d"/><xsl:param name="hm"/>
    <xsl:variable name="yy" select="$y - number($m &lt; 3)"/>
    <xsl:variable name="w" select="($yy + floor($yy div 4) - floor($yy div 100)
        + floor($yy div 400) + number(substring('032503514624', $m, 1)) + $d) mod 7"/>
    <xsl:value-of select="$d"/>
    <xsl:text> </xsl:text>
    <xsl:choose>
      <xsl:when test="$m = 1">Ocak</xsl:when><xsl:when test="$m = 2">Şubat</xsl:when>
      <xsl:when test="$m = 3">Mart</xsl:when><xsl:when test="$m = 4">Nisan</xsl:when>
      <xsl:when test="$m = 5">Mayıs</xsl:when><xsl:when test="$m = 6">Haziran</xsl:when>
      <xsl:when test="$m = 7">Temmuz</xsl:when><xsl:when test="$m = 8">Ağustos</xsl:when>
      <xsl:when test="$m = 9">Eylül</xsl:when><xsl:when test="$m = 10">Ekim</xsl:when>
      <xsl:when test="$m = 11">Kasım</xsl:when><xsl:otherwise>Aralık</xsl:otherwise>
    </xsl:choose>
    <xsl:text> </xsl:text>
    <xsl:value-of select="$y"/>
    <xsl:text> </xsl:text>
    <xsl:choose>
      <xsl:when test="$w = 0">Pazar</xsl:when><xsl:when test="$w = 1">Pazartesi</xsl:when>
      <xsl:when test="$w = 2">Salı</xsl:when><xsl:when test="$w = 3">Çarşamba</xsl:when>
      <xsl:when test="$w = 4">Perşembe</xsl:when><xsl:when test="$w = 5">Cuma</xsl:when>
      <xsl:otherwise>Cumartesi</xsl:otherwise>
    </xsl:choose>
    <xsl:text> </xsl:text>
    <xsl:value-of select="$hm"/>
  </xsl:template>

  <!-- the text of an HTML fragment: its first 600 characters (tags included: this bounds
       the recursion), tags dropped, entities decoded -->
  <xsl:template name="text">
    <xsl:param name="html"/>
    <xsl:call-template name="untag">
      <xsl:with-param name="s" select="substring($html, 1, 600)"/>
    </xsl:call-template>
    <xsl:if test="string-length($html) &gt; 600"> …</xsl:if>
  </xsl:template>

  <xsl:template name="untag">
    <xsl:param name="s"/>
    <xsl:choose>
      <xsl:when test="contains($s, '&lt;')">
        <xsl:call-template name="entities">
          <xsl:with-param name="s" select="substring-before($s, '&lt;')"/>
        </xsl:call-template>
        <xsl:if test="substring-before($s, '&lt;') != ''"><xsl:text> </xsl:text></xsl:if>
        <xsl:call-template name="untag">
          <xsl:with-param name="s" select="substring-after(substring-after($s, '&lt;'), '&gt;')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="entities"><xsl:with-param name="s" select="$s"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- &lt; &gt; &quot; &#39; &#x27; &nbsp; and, last, &amp; -->
  <xsl:template name="entities">
    <xsl:param name="s"/>
    <xsl:variable name="s0"><xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s"/><xsl:with-param name="from" select="'&amp;lt;'"/>
      <xsl:with-param name="to" select="'&lt;'"/></xsl:call-template></xsl:variable>
    <xsl:variable name="s1"><xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s0"/><xsl:with-param name="from" select="'&amp;gt;'"/>
      <xsl:with-param name="to" select="'&gt;'"/></xsl:call-template></xsl:variable>
    <xsl:variable name="s2"><xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s1"/><xsl:with-param name="from" select="'&amp;quot;'"/>
      <xsl:with-param name="to" select="'&quot;'"/></xsl:call-template></xsl:variable>
    <xsl:variable name="s3"><xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s2"/><xsl:with-param name="from" select="'&amp;#39;'"/>
      <xsl:with-param name="to" select="&quot;'&quot;"/></xsl:call-template></xsl:variable>
    <xsl:variable name="s4"><xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s3"/><xsl:with-param name="from" select="'&amp;#x27;'"/>
      <xsl:with-param name="to" select="&quot;'&quot;"/></xsl:call-template></xsl:variable>
    <xsl:variable name="s5"><xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s4"/><xsl:with-param name="from" select="'&amp;nbsp;'"/>
      <xsl:with-param name="to" select="'&#160;'"/></xsl:call-template></xsl:variable>
    <xsl:call-template name="replace">
      <xsl:with-param name="s" select="$s5"/><xsl:with-param name="from" select="'&amp;amp;'"/>
      <xsl:with-param name="to" select="'&amp;'"/></xsl:call-template>
  </xsl:template>

  <xsl:template name="replace">
    <xsl:param name="s"/><xsl:param name="from"/><xsl:param name="to"/>
    <xsl:choose>
      <xsl:when test="contains($s, $from)">
        <xsl:value-of select="concat(substring-before($s, $from), $to)"/>
        <xsl:call-template name="replace">
          <xsl:with-param name="s" select="substring-after($s, $from)"/>
          <xsl:with-param name="from" select="$from"/><xsl:with-param name="to" select="$to"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$s"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
"""
