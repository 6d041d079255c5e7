//! The service-to-service access graph of the HTML report, as inline SVG:
//! source identities on the left, destination workloads (and services) on the right, one
//! edge per pair labelled with its counts. Edges with denials are red and
//! dashed, edges with errors orange, the rest green.

use super::summary::Counts;
use crate::escape::html as escape;
use std::collections::BTreeMap;
use std::fmt::Write;

const MARGIN: f64 = 24.0;
const TOP: f64 = 64.0;
const ROW: f64 = 64.0;
const NODE_H: f64 = 34.0;
const GAP: f64 = 560.0;
const CHAR_W: f64 = 7.4;
const LABEL_CHAR_W: f64 = 6.8;
const MAX_LABEL: usize = 44;

/// A short, readable name for a node: `ns/sa` for a SPIFFE workload
/// identity, keeping a destination's `(service)`.
pub fn short_label(name: &str) -> String {
    let (identity, service) = match name.split_once(" (") {
        Some((id, svc)) if id.starts_with("spiffe://") => (id, Some(svc)),
        _ => (name, None),
    };
    let parts: Vec<&str> = identity
        .strip_prefix("spiffe://")
        .map(|r| r.split('/').collect())
        .unwrap_or_default();
    let short = match parts.as_slice() {
        [_, "ns", ns, "sa", sa] => format!("{ns}/{sa}"),
        _ => identity.to_string(),
    };
    let label = match service {
        Some(svc) => format!("{short} ({svc}"),
        None => short,
    };
    if label.chars().count() > MAX_LABEL {
        let cut: String = label.chars().take(MAX_LABEL - 1).collect();
        format!("{cut}…")
    } else {
        label
    }
}

struct Style {
    colour: &'static str,
    dash: &'static str,
    marker: &'static str,
}

fn style(c: &Counts) -> Style {
    if c.denied > 0 {
        Style {
            colour: "#c62828",
            dash: " stroke-dasharray=\"7 5\"",
            marker: "arrow-denied",
        }
    } else if c.error > 0 {
        Style {
            colour: "#ef6c00",
            dash: "",
            marker: "arrow-error",
        }
    } else {
        Style {
            colour: "#2e7d32",
            dash: "",
            marker: "arrow-ok",
        }
    }
}

fn edge_label(c: &Counts) -> String {
    let mut s = format!("{} req", c.total);
    if c.denied > 0 {
        let _ = write!(s, " · {} denied", c.denied);
    }
    if c.error > 0 {
        let _ = write!(s, " · {} error", c.error);
    }
    if c.violations > 0 {
        let _ = write!(
            s,
            " · {} violation{}",
            c.violations,
            if c.violations == 1 { "" } else { "s" }
        );
    }
    s
}

fn bezier(p: [(f64, f64); 4], t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    let w = [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t];
    (
        p.iter().zip(w).map(|(q, k)| q.0 * k).sum(),
        p.iter().zip(w).map(|(q, k)| q.1 * k).sum(),
    )
}

/// Boxes overlap when they intersect with a little air between them.
fn overlaps(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
    a.0 < b.0 + b.2 + 4.0 && b.0 < a.0 + a.2 + 4.0 && a.1 < b.1 + b.3 + 2.0 && b.1 < a.1 + a.3 + 2.0
}

/// Orders `nodes` by the weighted mean index of their peers in `fixed`;
/// `links` yields (node, peer, weight).
fn barycentre_sort<'a>(
    nodes: &mut [&'a str],
    fixed: &[&str],
    links: impl Iterator<Item = (&'a str, &'a str, f64)>,
) {
    let mut sums: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (node, peer, w) in links {
        let at = fixed.iter().position(|f| *f == peer).unwrap_or(0) as f64;
        let e = sums.entry(node).or_default();
        e.0 += at * w;
        e.1 += w;
    }
    let centre = |n: &str| {
        sums.get(n)
            .map_or(0.0, |(s, w)| if *w > 0.0 { s / w } else { 0.0 })
    };
    nodes.sort_by(|a, b| centre(a).total_cmp(&centre(b)).then(a.cmp(b)));
}

pub fn render(edges: &BTreeMap<(String, String), Counts>) -> String {
    let mut sources: Vec<&str> = edges.keys().map(|(s, _)| s.as_str()).collect();
    sources.dedup();
    let mut dests: Vec<&str> = edges.keys().map(|(_, d)| d.as_str()).collect();
    dests.sort();
    dests.dedup();
    // Barycentre ordering: each node sits near the traffic-weighted average
    // position of its peers, which removes most edge crossings.
    let pairs: Vec<(&str, &str, f64)> = edges
        .iter()
        .map(|((s, d), c)| (s.as_str(), d.as_str(), c.total as f64))
        .collect();
    barycentre_sort(
        &mut dests,
        &sources,
        pairs.iter().map(|&(s, d, w)| (d, s, w)),
    );
    barycentre_sort(
        &mut sources,
        &dests,
        pairs.iter().map(|&(s, d, w)| (s, d, w)),
    );
    barycentre_sort(
        &mut dests,
        &sources,
        pairs.iter().map(|&(s, d, w)| (d, s, w)),
    );

    let width_of = |names: &[&str]| {
        let longest = names
            .iter()
            .map(|n| short_label(n).chars().count())
            .max()
            .unwrap_or(0);
        (longest as f64 * CHAR_W + 28.0).clamp(140.0, 360.0)
    };
    let (wl, wr) = (width_of(&sources), width_of(&dests));
    let rows = sources.len().max(dests.len()).max(1) as f64;
    let width = MARGIN * 2.0 + wl + GAP + wr;
    let height = TOP + rows * ROW + 84.0;
    let (xl, xr) = (MARGIN, MARGIN + wl + GAP);
    let y_of =
        |i: usize, n: usize| TOP + (rows - n as f64) * ROW / 2.0 + i as f64 * ROW + ROW / 2.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"service-to-service access graph\" font-family=\"Helvetica, Arial, sans-serif\">"
    );
    svg.push_str("<defs>");
    for (id, colour) in [
        ("arrow-ok", "#2e7d32"),
        ("arrow-error", "#ef6c00"),
        ("arrow-denied", "#c62828"),
    ] {
        let _ = write!(
            svg,
            "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"12\" markerHeight=\"12\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{colour}\"/></marker>"
        );
    }
    svg.push_str("</defs>\n");
    let _ = writeln!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    );
    let _ = writeln!(svg, "<text x=\"{xl}\" y=\"36\" font-size=\"15\" font-weight=\"bold\" fill=\"#0d47a1\">Sources (workload identity)</text>");
    let _ = writeln!(svg, "<text x=\"{xr}\" y=\"36\" font-size=\"15\" font-weight=\"bold\" fill=\"#4a148c\">Destinations (workload, service)</text>");

    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut labels = String::new();
    for ((s, d), c) in edges {
        let i = sources.iter().position(|x| x == s).unwrap_or(0);
        let j = dests.iter().position(|x| x == d).unwrap_or(0);
        let (x1, y1) = (xl + wl, y_of(i, sources.len()));
        let (x2, y2) = (xr - 2.0, y_of(j, dests.len()));
        let dx = (x2 - x1) * 0.5;
        let pts = [(x1, y1), (x1 + dx, y1), (x2 - dx, y2), (x2, y2)];
        let st = style(c);
        let stroke = (1.5 + (c.total as f64).log2()).clamp(1.5, 7.0);
        let text = edge_label(c);
        let _ = writeln!(
            svg,
            "<path class=\"edge\" d=\"M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{stroke:.1}\"{} marker-end=\"url(#{})\"><title>{} → {}: {}</title></path>",
            x1 + dx,
            x2 - dx,
            st.colour,
            st.dash,
            st.marker,
            escape(s),
            escape(d),
            escape(&text)
        );
        let (w, h) = (text.chars().count() as f64 * LABEL_CHAR_W + 10.0, 18.0);
        let spot = [0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8]
            .iter()
            .map(|&t| bezier(pts, t))
            .map(|(x, y)| (x - w / 2.0, y - h / 2.0, w, h))
            .find(|b| !placed.iter().any(|p| overlaps(*p, *b)))
            .unwrap_or_else(|| {
                let (x, y) = bezier(pts, 0.5);
                (x - w / 2.0, y - h / 2.0, w, h)
            });
        placed.push(spot);
        let _ = writeln!(
            labels,
            "<g class=\"edge-label\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"4\" fill=\"#ffffff\" stroke=\"{}\" stroke-width=\"1\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"{}\">{}</text></g>",
            spot.0,
            spot.1,
            st.colour,
            spot.0 + w / 2.0,
            spot.1 + 13.0,
            st.colour,
            escape(&text)
        );
    }
    svg.push_str(&labels);
    for (names, x, w, fill, line) in [
        (&sources, xl, wl, "#e3f2fd", "#1565c0"),
        (&dests, xr, wr, "#f3e5f5", "#6a1b9a"),
    ] {
        for (i, name) in names.iter().enumerate() {
            let y = y_of(i, names.len());
            let _ = writeln!(
                svg,
                "<g class=\"node\"><title>{}</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"{line}\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#212121\">{}</text></g>",
                escape(name),
                y - NODE_H / 2.0,
                x + w / 2.0,
                y + 4.5,
                escape(&short_label(name))
            );
        }
    }
    let ly = TOP + rows * ROW + 40.0;
    let legend = [
        ("#2e7d32", "", "all allowed"),
        ("#ef6c00", "", "some errors"),
        ("#c62828", " stroke-dasharray=\"7 5\"", "some denied"),
    ];
    for (k, (colour, dash, what)) in legend.iter().enumerate() {
        let x = MARGIN + k as f64 * 190.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" fill=\"#424242\">{what}</text>",
            x + 44.0,
            x + 52.0,
            ly + 4.5
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_identities_are_shortened_to_namespace_and_account() {
        assert_eq!(
            short_label("spiffe://cluster.local/ns/shop/sa/frontend"),
            "shop/frontend"
        );
        assert_eq!(short_label("orders"), "orders");
        assert_eq!(
            short_label("spiffe://cluster.local/ns/shop/sa/backend (backend.shop)"),
            "shop/backend (backend.shop)"
        );
        assert_eq!(short_label(&"x".repeat(60)).chars().count(), MAX_LABEL);
    }

    #[test]
    fn markup_in_names_is_escaped() {
        let mut edges = BTreeMap::new();
        edges.insert(
            ("<script>".to_string(), "a&b".to_string()),
            Counts {
                total: 1,
                ..Counts::default()
            },
        );
        let svg = render(&edges);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("a&amp;b"));
    }
}
