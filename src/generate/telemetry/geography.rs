//! The contiguous United States as 48 states plus DC (the borders in `assets/`), with a
//! point sampler that is uniform over each state's land and an indexed point-in-state test.
//!
//! Exact point-in-polygon tests (`geo`) cost a pass over a state's edges, hundreds to
//! thousands of them; 20 million devices need a few tens of millions of tests. So each state
//! carries a grid over its bounding box whose cells are known to be wholly inside, wholly
//! outside, or crossed by the border: only points in border cells pay for the exact test.
//! The grid's rows are even in sin(latitude), so every cell covers the same area of the
//! sphere, and a uniform point of the state is a uniform cell among those not outside, a
//! uniform point in it, kept if inside: few draws are wasted.

use anyhow::{anyhow, bail, Context};
use geo::{BoundingRect, ChamberlainDuquetteArea, Contains, LinesIter, MultiPolygon, Point, Rect};
use rand::distr::weighted::WeightedIndex;
use rand::Rng;

use crate::error::Result;

/// The borders compiled into the binary: nothing is read from disk at run time.
pub const STATES_GEOJSON: &str = include_str!("../../../assets/contiguous-us-states.geojson");

/// Grid cells per side of a state's bounding box.
const GRID: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Outside,
    Inside,
    Border,
}

pub struct State {
    pub name: String,
    /// Two-letter postal code.
    pub postal: String,
    /// Census region: Northeast, Midwest, South or West.
    pub region: String,
    pub shape: MultiPolygon<f64>,
    /// Land area in square metres.
    pub area_m2: f64,
    bbox: Rect<f64>,
    /// sin(latitude) of the bounding box's south and north edges.
    z: (f64, f64),
    cells: Vec<Cell>,
    /// The cells not wholly outside.
    candidates: Vec<u32>,
}

impl State {
    fn cell_of(&self, lon: f64, lat: f64) -> Option<usize> {
        let (min, max) = (self.bbox.min(), self.bbox.max());
        let fx = (lon - min.x) / (max.x - min.x);
        let fy = (lat.to_radians().sin() - self.z.0) / (self.z.1 - self.z.0);
        if !(0.0..=1.0).contains(&fx) || !(0.0..=1.0).contains(&fy) {
            return None;
        }
        let x = ((fx * GRID as f64) as usize).min(GRID - 1);
        let y = ((fy * GRID as f64) as usize).min(GRID - 1);
        Some(y * GRID + x)
    }

    /// Whether (lon, lat) lies inside the state: the grid answers for most points, the
    /// exact polygon test for points in cells the border crosses.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        match self.cell_of(lon, lat).map(|c| self.cells[c]) {
            None | Some(Cell::Outside) => false,
            Some(Cell::Inside) => true,
            Some(Cell::Border) => self.shape.contains(&Point::new(lon, lat)),
        }
    }

    /// A point uniform over the state's area, rounded to 1e-6 degrees (about 10 cm) and
    /// then tested, so the rounded point is the one inside.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> (f64, f64) {
        let min = self.bbox.min();
        let (w, h) = self.cell_size();
        loop {
            let cell = self.candidates[rng.random_range(0..self.candidates.len())] as usize;
            let (x, y) = ((cell % GRID) as f64, (cell / GRID) as f64);
            let lon = round6(min.x + (x + rng.random::<f64>()) * w);
            let z = self.z.0 + (y + rng.random::<f64>()) * h;
            let lat = round6(z.clamp(-1.0, 1.0).asin().to_degrees());
            if self.contains(lon, lat) {
                return (lon, lat);
            }
        }
    }

    /// A cell's width in degrees of longitude and height in sin(latitude).
    fn cell_size(&self) -> (f64, f64) {
        let (min, max) = (self.bbox.min(), self.bbox.max());
        (
            (max.x - min.x) / GRID as f64,
            (self.z.1 - self.z.0) / GRID as f64,
        )
    }

    fn index(
        name: String,
        postal: String,
        region: String,
        shape: MultiPolygon<f64>,
    ) -> Result<State> {
        let bbox = shape
            .bounding_rect()
            .ok_or_else(|| anyhow!("state {postal} has an empty geometry"))?;
        let sin = |lat: f64| lat.to_radians().sin();
        let mut state = State {
            area_m2: shape.chamberlain_duquette_unsigned_area(),
            name,
            postal,
            region,
            shape,
            bbox,
            z: (sin(bbox.min().y), sin(bbox.max().y)),
            cells: vec![Cell::Outside; GRID * GRID],
            candidates: Vec::new(),
        };
        // Every cell an edge's bounding box touches may be crossed by the border (an edge
        // stays within its latitudes, so within their sines).
        let min = bbox.min();
        let (w, h) = state.cell_size();
        let z0 = state.z.0;
        let to_cell = |v: f64, lo: f64, size: f64| {
            (((v - lo) / size).floor().max(0.0) as usize).min(GRID - 1)
        };
        for line in state.shape.lines_iter() {
            let (x0, x1) = (line.start.x.min(line.end.x), line.start.x.max(line.end.x));
            let (y0, y1) = (line.start.y.min(line.end.y), line.start.y.max(line.end.y));
            for y in to_cell(sin(y0), z0, h)..=to_cell(sin(y1), z0, h) {
                for x in to_cell(x0, min.x, w)..=to_cell(x1, min.x, w) {
                    state.cells[y * GRID + x] = Cell::Border;
                }
            }
        }
        // A run of cells no edge crosses lies wholly on one side of the border: one exact
        // test at the first cell's centre classifies the run.
        for y in 0..GRID {
            let mut x = 0;
            while x < GRID {
                if state.cells[y * GRID + x] == Cell::Border {
                    x += 1;
                    continue;
                }
                let lat = (z0 + (y as f64 + 0.5) * h).asin().to_degrees();
                let centre = Point::new(min.x + (x as f64 + 0.5) * w, lat);
                let class = if state.shape.contains(&centre) {
                    Cell::Inside
                } else {
                    Cell::Outside
                };
                while x < GRID && state.cells[y * GRID + x] != Cell::Border {
                    state.cells[y * GRID + x] = class;
                    x += 1;
                }
            }
        }
        state.candidates = (0..GRID * GRID)
            .filter(|&c| state.cells[c] != Cell::Outside)
            .map(|c| c as u32)
            .collect();
        Ok(state)
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The 49 states, in the file's order, and a draw of a state weighted by land area.
pub struct Geography {
    pub states: Vec<State>,
    by_area: WeightedIndex<f64>,
}

impl Geography {
    /// The borders shipped with micro-wh.
    pub fn contiguous_us() -> Result<Geography> {
        Geography::parse(STATES_GEOJSON).context("assets/contiguous-us-states.geojson")
    }

    pub fn parse(text: &str) -> Result<Geography> {
        let geojson: geojson::GeoJson = text.parse().context("not GeoJSON")?;
        let geojson::GeoJson::FeatureCollection(collection) = geojson else {
            bail!("expected a FeatureCollection");
        };
        let mut states = Vec::new();
        for (i, feature) in collection.features.into_iter().enumerate() {
            let property = |key: &str| {
                feature
                    .property(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("feature {i}: no text property `{key}`"))
            };
            let (name, postal, region) =
                (property("name")?, property("postal")?, property("region")?);
            let geometry = feature
                .geometry
                .as_ref()
                .ok_or_else(|| anyhow!("feature {i} ({postal}): no geometry"))?;
            let shape = match geo::Geometry::<f64>::try_from(geometry)
                .with_context(|| format!("feature {i} ({postal})"))?
            {
                geo::Geometry::MultiPolygon(m) => m,
                geo::Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
                other => {
                    bail!("feature {i} ({postal}): expected a (Multi)Polygon, found {other:?}")
                }
            };
            states.push(State::index(name, postal, region, shape)?);
        }
        if states.is_empty() {
            bail!("no states");
        }
        let by_area = WeightedIndex::new(states.iter().map(|s| s.area_m2))
            .context("state areas are not valid weights")?;
        Ok(Geography { states, by_area })
    }

    /// A state drawn with probability proportional to its land area.
    pub fn draw_state<R: Rng>(&self, rng: &mut R) -> usize {
        rng.sample(&self.by_area)
    }

    pub fn total_area_m2(&self) -> f64 {
        self.states.iter().map(|s| s.area_m2).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_grid_agrees_with_the_exact_test() {
        let geo = Geography::contiguous_us().unwrap();
        assert_eq!(geo.states.len(), 49);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut inside = 0;
        for _ in 0..200_000 {
            let (lon, lat) = (
                rng.random_range(-125.0..-66.0),
                rng.random_range(24.0..50.0),
            );
            for s in &geo.states {
                let exact = s.shape.contains(&Point::new(lon, lat));
                assert_eq!(
                    s.contains(lon, lat),
                    exact,
                    "{} at ({lon}, {lat})",
                    s.postal
                );
                inside += exact as usize;
            }
        }
        // The contiguous US covers roughly half of that box.
        assert!((60_000..140_000).contains(&inside), "{inside}");
    }

    #[test]
    fn areas_match_the_census_land_and_water_figures() {
        let geo = Geography::contiguous_us().unwrap();
        let km2 = |postal: &str| {
            geo.states
                .iter()
                .find(|s| s.postal == postal)
                .unwrap()
                .area_m2
                / 1e6
        };
        // Census total areas: Texas 695,662 km2, Rhode Island 4,001 km2 (the 1:10M
        // cartographic borders differ by a few percent, more for small coastal states).
        assert!((650_000.0..740_000.0).contains(&km2("TX")), "{}", km2("TX"));
        assert!((2_500.0..4_500.0).contains(&km2("RI")), "{}", km2("RI"));
        assert!((7.5e6..8.3e6).contains(&(geo.total_area_m2() / 1e6)));
    }
}
