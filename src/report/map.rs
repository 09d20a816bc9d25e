//! A choropleth of the contiguous US states, drawn as inline SVG from the state geometry
//! compiled into the binary (assets/contiguous-us-states.geojson).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use geojson::{FeatureCollection, GeometryValue};
use maud::{html, Markup};

use crate::error::Result;

const GEOMETRY: &str = include_str!("../../assets/contiguous-us-states.geojson");
const WIDTH: f64 = 960.0;
const MAP_HEIGHT: f64 = 560.0;
const LEGEND_HEIGHT: f64 = 56.0;

/// Viridis in five steps: ordered in lightness, so it reads in grey and for colour-blind readers.
const SCALE: [&str; 5] = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
const NO_DATA: &str = "#dddddd";

/// One state's outline, projected and scaled to the map's pixels.
struct State {
    postal: String,
    name: String,
    path: String,
}

/// What a state shows: the value that colours it and the text of its tooltip.
pub struct StateValue {
    pub value: f64,
    pub tooltip: String,
}

/// Albers equal-area conic with the usual parallels for the contiguous US: states keep
/// their relative areas and shapes, unlike plain longitude/latitude.
fn albers(lon: f64, lat: f64) -> (f64, f64) {
    let (phi1, phi2, phi0, lambda0) = (
        29.5f64.to_radians(),
        45.5f64.to_radians(),
        37.5f64.to_radians(),
        (-96.0f64).to_radians(),
    );
    let n = (phi1.sin() + phi2.sin()) / 2.0;
    let c = phi1.cos().powi(2) + 2.0 * n * phi1.sin();
    let rho0 = (c - 2.0 * n * phi0.sin()).sqrt() / n;
    let rho = (c - 2.0 * n * lat.to_radians().sin()).sqrt() / n;
    let theta = n * (lon.to_radians() - lambda0);
    (rho * theta.sin(), rho0 - rho * theta.cos())
}

fn states() -> Result<&'static [State]> {
    static STATES: OnceLock<std::result::Result<Vec<State>, String>> = OnceLock::new();
    STATES
        .get_or_init(|| load().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow::anyhow!("the state geometry compiled into micro-wh is unusable: {e}"))
}

fn load() -> Result<Vec<State>> {
    let collection: FeatureCollection = GEOMETRY.parse()?;
    let mut shapes = Vec::new();
    for feature in &collection.features {
        let property = |key: &str| {
            feature
                .property(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("a feature has no `{key}`"))
        };
        let polygons = match feature.geometry.as_ref().map(|g| &g.value) {
            Some(GeometryValue::Polygon { coordinates }) => vec![coordinates.clone()],
            Some(GeometryValue::MultiPolygon { coordinates }) => coordinates.clone(),
            _ => anyhow::bail!("{} is not a polygon", property("name")?),
        };
        let rings: Vec<Vec<(f64, f64)>> = polygons
            .iter()
            .flatten()
            .map(|ring| {
                ring.iter()
                    .map(|p| {
                        let p = p.as_slice();
                        albers(p[0], p[1])
                    })
                    .collect()
            })
            .collect();
        shapes.push((property("postal")?, property("name")?, rings));
    }
    let all = || shapes.iter().flat_map(|s| s.2.iter().flatten());
    let (min_x, max_x) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (min_y, max_y) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let scale = ((WIDTH - 20.0) / (max_x - min_x)).min((MAP_HEIGHT - 20.0) / (max_y - min_y));
    let to_pixels = |(x, y): (f64, f64)| (10.0 + (x - min_x) * scale, 10.0 + (max_y - y) * scale);
    Ok(shapes
        .into_iter()
        .map(|(postal, name, rings)| {
            let mut path = String::new();
            for ring in rings {
                for (i, point) in ring.into_iter().enumerate() {
                    let (x, y) = to_pixels(point);
                    path.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
                }
                path.push('Z');
            }
            State { postal, name, path }
        })
        .collect())
}

/// The states coloured by their value in five equal steps from the lowest to the highest,
/// with a legend; states without a value are grey. `values` is keyed by postal code.
pub fn choropleth(
    title: &str,
    unit: &str,
    values: &BTreeMap<String, StateValue>,
    format: impl Fn(f64) -> String,
) -> Result<Markup> {
    let states = states()?;
    let known = values.values().map(|v| v.value).filter(|v| v.is_finite());
    let low = known.clone().fold(f64::INFINITY, f64::min);
    let high = known.fold(f64::NEG_INFINITY, f64::max);
    let step = ((high - low) / SCALE.len() as f64).max(f64::EPSILON);
    let colour = |v: f64| {
        if !v.is_finite() {
            return NO_DATA;
        }
        SCALE[(((v - low) / step) as usize).min(SCALE.len() - 1)]
    };
    let height = MAP_HEIGHT + LEGEND_HEIGHT;
    let swatch = 120.0;
    let legend_x = (WIDTH - swatch * (SCALE.len() + 1) as f64) / 2.0;
    Ok(html! {
        svg.map width=(WIDTH) height=(height) viewBox={"0 0 " (WIDTH) " " (height)}
            xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title) {
            title { (title) }
            @for state in states {
                @let value = values.get(&state.postal);
                path d=(state.path) fill=(colour(value.map_or(f64::NAN, |v| v.value)))
                    stroke="#ffffff" stroke-width="0.8" data-state=(state.postal) {
                    title {
                        @match value {
                            Some(v) => (v.tooltip),
                            None => { (state.name) ": no data" },
                        }
                    }
                }
            }
            g font-family="sans-serif" font-size="13" {
                text x=(legend_x) y=(MAP_HEIGHT + 8.0) { (unit) }
                @for (i, fill) in SCALE.iter().enumerate() {
                    @let x = legend_x + swatch * i as f64;
                    rect x=(x) y=(MAP_HEIGHT + 16.0) width=(swatch - 4.0) height="14" fill=(fill) {}
                    text x=(x) y=(MAP_HEIGHT + 46.0) {
                        (format(low + step * i as f64)) " – " (format(low + step * (i + 1) as f64))
                    }
                }
                @let x = legend_x + swatch * SCALE.len() as f64;
                rect x=(x) y=(MAP_HEIGHT + 16.0) width=(swatch - 4.0) height="14" fill=(NO_DATA) {}
                text x=(x) y=(MAP_HEIGHT + 46.0) { "no data" }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_dc_has_an_outline_inside_the_map() {
        let states = states().unwrap();
        assert_eq!(states.len(), 49);
        assert!(states.iter().any(|s| s.postal == "DC"));
        for s in states {
            for number in s.path.split(['M', 'L', 'Z', ',']) {
                if let Ok(v) = number.parse::<f64>() {
                    assert!((0.0..=WIDTH).contains(&v), "{} has {v}", s.postal);
                }
            }
        }
    }
}
