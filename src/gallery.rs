//! HTML gallery of query results: thumbnails from the database (inline, so the page is one
//! self-contained file), scores, metadata and credits, and a map of the results' footprints
//! ([`map`]) when they have any.
//!
//! | file | responsibility |
//! | --- | --- |
//! | `gallery.rs` | the page: header, map panel, one card per result (element id `res{i}`), credits |
//! | `gallery/map.rs` | the map panel: projection, world outline, footprints, heat-map overlay, legend |
//!
//! Invariant: every string from the database or the query is HTML-escaped; the page loads
//! nothing from the network (thumbnails and heat maps are data URLs, the outline is compiled in,
//! style and script are inline).

pub mod map;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use map::{MapItem, Overlay};
use skysift_storage::schema::Value;

use crate::error::{Error, Result};
use crate::export::FOOTPRINT_FIELD;
use crate::present::{Answer, display_value, html_escape as escape, key_fields};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64.
#[must_use]
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The results of `a` that have a footprint, as map items.
#[must_use]
pub fn map_items(a: &Answer) -> Vec<MapItem> {
    a.rows
        .iter()
        .enumerate()
        .filter_map(|(card, r)| {
            r.fields.iter().find_map(|(n, v)| match v {
                Value::GeoBbox(b) if n == FOOTPRINT_FIELD => {
                    Some(MapItem { card, rank: r.rank, id: r.id, score: r.score, bbox: *b })
                }
                _ => None,
            })
        })
        .collect()
}

/// The page for one answer.
#[must_use]
pub fn html(query: &str, a: &Answer) -> String {
    page(query, a, None)
}

/// The page for one answer, with `overlay` (a scene's heat map) laid on the map at its footprint.
#[must_use]
pub fn page(query: &str, a: &Answer, overlay: Option<&Overlay>) -> String {
    let panel = map::panel(&map_items(a), overlay);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>skysift: {q}</title><style>\
body{{font-family:system-ui,sans-serif;margin:24px;background:#f6f7f9;color:#1d2329}}\
@media (max-width:600px){{body{{margin:10px}} .grid{{grid-template-columns:repeat(auto-fill,minmax(140px,1fr))!important}}}}\
h1{{font-size:20px}} .meta{{color:#5b6670;font-size:13px}}\
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:14px;margin-top:16px}}\
.card{{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:8px;font-size:12px}}\
.card img{{width:100%;aspect-ratio:1;object-fit:cover;border-radius:4px;background:#dde}}\
.noimg{{width:100%;aspect-ratio:1;display:flex;align-items:center;justify-content:center;background:#dde;border-radius:4px}}\
.score{{font-weight:600;font-size:14px}} dl{{margin:4px 0;display:grid;grid-template-columns:auto 1fr;gap:1px 6px}}\
dt{{color:#5b6670}} dd{{margin:0;overflow-wrap:anywhere}} footer{{margin-top:24px;font-size:12px;color:#5b6670}}\
{css}</style></head><body><h1>{q}</h1><div class=\"meta\">{n} results{lang}; {p} prompts; encode {e:.1} ms, search {t:.1} ms</div>\
{panel}<div class=\"grid\">",
        q = escape(query),
        n = a.rows.len(),
        lang = a.language.as_deref().map_or(String::new(), |l| format!(", language {}", escape(l))),
        p = a.prompts.len(),
        e = a.encode_time.as_secs_f64() * 1e3,
        t = a.search_time.as_secs_f64() * 1e3,
        css = if panel.is_some() { map::CSS } else { "" },
        panel = panel.as_deref().unwrap_or(""),
    );
    // Notes say what the scores are (classifier probabilities, period differences) and how the
    // results were found; a full-width row above the cards.
    for n in &a.notes {
        let _ = write!(s, "<div class=\"meta\" style=\"grid-column:1/-1\">{}</div>", escape(n));
    }
    for (i, r) in a.rows.iter().enumerate() {
        let _ = write!(s, "<div class=\"card\" id=\"res{i}\">");
        match &r.thumbnail {
            Some(t) if t.starts_with(&[0xFF, 0xD8]) => {
                let _ = write!(s, "<img alt=\"record {}\" src=\"data:image/jpeg;base64,{}\">", r.id, base64(t));
            }
            Some(t) if t.starts_with(b"\x89PNG") => {
                let _ = write!(s, "<img alt=\"record {}\" src=\"data:image/png;base64,{}\">", r.id, base64(t));
            }
            _ => s.push_str("<div class=\"noimg\">no thumbnail</div>"),
        }
        let _ =
            write!(s, "<div class=\"score\">#{} &middot; {:.4}</div><dl><dt>id</dt><dd>{}</dd>", r.rank, r.score, r.id);
        let source = r.fields.iter().filter(|(n, _)| n == "source").map(|(n, v)| (n.as_str(), v));
        for (n, v) in source.chain(key_fields(&r.fields)) {
            let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", escape(n), escape(&display_value(v)));
        }
        s.push_str("</dl></div>");
    }
    s.push_str(
        "</div><footer>Generated by skysift. Sample imagery: AID (Xia et al., IEEE TGRS 2017) with RSICD captions \
(Lu et al., IEEE TGRS 2017), academic research datasets; sample metadata is generated.",
    );
    if panel.is_some() {
        let _ = write!(
            s,
            " Map: Natural Earth 1:110m (public domain), simplified; footprints smaller than {:.1}% of the map's \
width are drawn at that size.</footer><script>{}</script>",
            map::MIN_SHAPE * 100.0,
            map::SCRIPT
        );
    } else {
        s.push_str("</footer>");
    }
    s.push_str("</body></html>\n");
    s
}

/// Writes the gallery page into `dir` and returns its path.
pub fn write(dir: &Path, query: &str, a: &Answer) -> Result<PathBuf> {
    write_page(dir, query, a, None)
}

/// [`write()`] with a heat map laid on the map ([`page`]).
pub fn write_page(dir: &Path, query: &str, a: &Answer, overlay: Option<&Overlay>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let path = dir.join(format!("skysift-gallery-{stamp}.html"));
    std::fs::write(&path, page(query, a, overlay))
        .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::present::AnswerRow;

    #[test]
    fn base64_and_escape() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(escape("<a href='x'>&\u{7}"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }

    fn answer(rows: Vec<AnswerRow>) -> Answer {
        Answer {
            rows,
            language: None,
            prompts: vec![],
            encode_time: Duration::ZERO,
            search_time: Duration::ZERO,
            notes: vec![],
        }
    }

    fn row(rank: usize, footprint: Option<[f64; 4]>) -> AnswerRow {
        let mut fields = vec![("class".to_owned(), Value::Keyword("<b>Port</b>".into()))];
        fields.extend(footprint.map(|b| (FOOTPRINT_FIELD.to_owned(), Value::GeoBbox(b))));
        AnswerRow { rank, id: rank as u64 * 7, score: 1.0 / rank as f32, fields, thumbnail: Some(b"\x89PNG".to_vec()) }
    }

    #[test]
    fn the_map_shows_each_footprint_and_links_it_to_its_card() {
        let a = answer(vec![
            row(1, Some([4.96, 51.94, 4.98, 51.96])),
            row(2, None),
            row(3, Some([13.3, 52.5, 13.4, 52.6])),
        ]);
        let p = html("ports & <harbours>", &a);
        assert!(p.contains("<meta name=\"viewport\""));
        assert_eq!(p.matches("<polygon class=\"fp").count(), 2, "one shape per result with a footprint");
        for card in [0, 2] {
            assert!(p.contains(&format!("<a href=\"#res{card}\">")) && p.contains(&format!("id=\"res{card}\"")));
        }
        assert!(p.contains("id=\"res1\"") && !p.contains("#res1\""), "no footprint, no shape");
        assert!(p.contains("id=\"maptip\"") && p.contains(map::SCRIPT) && p.contains("Natural Earth"));
        assert!(p.contains("skysift: ports &amp; &lt;harbours&gt;") && p.contains("&lt;b&gt;Port&lt;/b&gt;"));
        assert!(!p.contains("<harbours>") && !p.contains("<b>Port"));
        assert!(!p.contains("http:") && !p.contains("https:"), "the page loads nothing");
        let none = html("q", &answer(vec![row(1, None)]));
        assert!(!none.contains("id=\"map\"") && !none.contains("<script>"), "no footprints, no map");
    }
}
