//! Plots with `plotters`: learning curves, decision regions, benchmark throughput. PNG or SVG by
//! the file's extension. The text is drawn with DejaVu Sans, embedded in the binary, so no font
//! package is needed at run time.

use std::path::Path;
use std::sync::Once;

use nabla::{EpochReport, Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans (see assets/DejaVuSans-LICENSE.txt).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Class colours (Tableau 10).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An embedded, known-good font: registering it cannot fail after the first time.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format { path: path.display().to_string(), detail: format!("drawing the plot failed: {e}") }
}

/// Draws with `draw` on a PNG or SVG canvas of `size`, chosen by `path`'s extension, in memory,
/// then writes the file atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String>,
    draw_svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let bytes = match ext.as_str() {
        "png" => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                draw(&root).map_err(|e| plot_error(path, e))?;
                root.present().map_err(|e| plot_error(path, e))?;
            }
            png_bytes(&rgb, size).map_err(|e| plot_error(path, e))?
        }
        "svg" => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw_svg(&root).map_err(|e| plot_error(path, e))?;
                root.present().map_err(|e| plot_error(path, e))?;
            }
            svg.into_bytes()
        }
        _ => return Err(Error::invalid("--plot", format!("{}: give a .png or .svg file name", path.display()))),
    };
    nabla::atomic::write(path, &bytes)
}

/// An 8-bit RGB image of `size` encoded as PNG.
fn png_bytes(rgb: &[u8], size: (u32, u32)) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size.0, size.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(rgb)?;
    Ok(out)
}

/// A labelled curve: `(label, colour, (epoch, value) points)`.
type Curve<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// One panel of curves against epochs.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[Curve<'_>],
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0_f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(1.0..x_max.max(2.0), (y_min - pad)..(y_max + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (label, color, pts) in series {
        if pts.is_empty() {
            continue;
        }
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    history: &[EpochReport],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let pts = |f: &dyn Fn(&EpochReport) -> Option<f64>| -> Vec<(f64, f64)> {
        history.iter().filter_map(|r| f(r).map(|v| (r.epoch as f64, v))).collect()
    };
    let has_accuracy = history.iter().any(|r| r.train_accuracy.is_some());
    let loss = vec![
        ("train loss", COLORS[0], pts(&|r| Some(r.train_loss))),
        ("validation loss", COLORS[1], pts(&|r| r.val_loss)),
    ];
    if has_accuracy {
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        panel(&left, "loss", &loss)?;
        let acc = vec![
            ("train accuracy", COLORS[0], pts(&|r| r.train_accuracy)),
            ("validation accuracy", COLORS[1], pts(&|r| r.val_accuracy)),
        ];
        panel(&right, "accuracy", &acc)
    } else {
        panel(root, "loss", &loss)
    }
}

fn draw_comparison<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[(String, Vec<EpochReport>)],
    differences: &[Vec<f64>],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let color = |i: usize| COLORS[i % COLORS.len()];
    let losses: Vec<Curve<'_>> = runs
        .iter()
        .enumerate()
        .map(|(i, (name, h))| (name.as_str(), color(i), h.iter().map(|r| (r.epoch as f64, r.train_loss)).collect()))
        .collect();
    // log₁₀ of each relative difference (−16 for equal losses); an epoch where it is not finite
    // (a loss that blew up) is left out, not drawn as a small difference.
    let diffs: Vec<Curve<'_>> = runs
        .iter()
        .zip(differences)
        .enumerate()
        .skip(1)
        .map(|(i, ((name, h), d))| {
            let pts = h.iter().zip(d).filter(|(_, d)| d.is_finite());
            (name.as_str(), color(i), pts.map(|(r, d)| (r.epoch as f64, d.max(1e-16).log10())).collect())
        })
        .collect();
    let base = runs.first().map_or("", |(name, _)| name.as_str());
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    panel(&left, "train loss", &losses)?;
    panel(&right, &format!("log10 relative loss difference to {base}"), &diffs)
}

/// Each backend's training loss per epoch, overlaid, and its relative difference to the
/// first's (`differences[i]` for `runs[i]`, the first's ignored).
pub fn compare(path: &Path, runs: &[(String, Vec<EpochReport>)], differences: &[Vec<f64>]) -> Result<()> {
    let draw = |r: &DrawingArea<BitMapBackend, Shift>| draw_comparison(r, runs, differences);
    render(path, (1200, 480), draw, |r| draw_comparison(r, runs, differences))
}

/// Train and validation loss (and accuracy, for classification) per epoch.
pub fn curves(path: &Path, history: &[EpochReport]) -> Result<()> {
    render(path, (1200, 480), |r| draw_curves(r, history), |r| draw_curves(r, history))
}

/// Points of a 2-D data set and the classes a model assigns to a grid over them.
pub struct Regions<'a> {
    /// `(x, y, class)` of every sample.
    pub points: &'a [(f32, f32, usize)],
    /// The class of each grid cell, row by row from the top, `grid × grid` cells.
    pub cells: &'a [usize],
    pub grid: usize,
    /// `(x_min, x_max, y_min, y_max)` of the grid.
    pub bounds: (f32, f32, f32, f32),
}

fn draw_regions<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Regions<'_>) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (x0, x1, y0, y1) = r.bounds;
    let mut chart = ChartBuilder::on(root)
        .caption("decision regions", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart.configure_mesh().disable_mesh().label_style(("sans-serif", 14)).draw().map_err(err)?;
    let (dx, dy) = ((x1 - x0) / r.grid as f32, (y1 - y0) / r.grid as f32);
    let cells = r.cells.iter().enumerate().map(|(i, &c)| {
        let (row, col) = (i / r.grid, i % r.grid);
        let (x, y) = (x0 + col as f32 * dx, y1 - (row + 1) as f32 * dy);
        Rectangle::new([(x, y), (x + dx, y + dy)], COLORS[c % COLORS.len()].mix(0.25).filled())
    });
    chart.draw_series(cells).map_err(err)?;
    let dots = r.points.iter().map(|&(x, y, c)| Circle::new((x, y), 3, COLORS[c % COLORS.len()].filled()));
    chart.draw_series(dots).map_err(err)?;
    Ok(())
}

/// The decision regions of a classifier over a 2-D data set, with the samples on top.
pub fn regions(path: &Path, r: &Regions<'_>) -> Result<()> {
    render(path, (720, 720), |root| draw_regions(root, r), |root| draw_regions(root, r))
}

/// Bars of `(label, value)` (benchmark throughput), with a value axis named `unit`.
pub fn bars(path: &Path, title: &str, unit: &str, values: &[(String, f64)]) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        title: &str,
        unit: &str,
        values: &[(String, f64)],
    ) -> std::result::Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let max = values.iter().map(|v| v.1).fold(1.0, f64::max) * 1.1;
        let n = values.len().max(1) as u32;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(90)
            .y_label_area_size(80)
            .build_cartesian_2d((0u32..n).into_segmented(), 0.0..max)
            .map_err(err)?;
        let labels: Vec<String> = values.iter().map(|v| v.0.clone()).collect();
        chart
            .configure_mesh()
            .y_desc(unit)
            .x_labels(values.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        let bars = values.iter().enumerate().map(|(i, (_, v))| {
            let i = i as u32;
            Rectangle::new(
                [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)],
                COLORS[i as usize % 10].filled(),
            )
        });
        chart.draw_series(bars).map_err(err)?;
        Ok(())
    }
    render(path, (1000, 520), |r| draw(r, title, unit, values), |r| draw(r, title, unit, values))
}

/// One line of a [`lines`] chart.
pub struct Line {
    pub label: String,
    /// Drawn thin: the bound a thick line is compared with.
    pub thin: bool,
    pub points: Vec<(f64, f64)>,
}

/// Lines of `(x, y)` points on a log-x axis (the scaling study). Consecutive pairs of lines
/// share a colour: a thick measured line and its thin bound.
pub fn lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[Line]) -> Result<()> {
    fn draw<DB: DrawingBackend>(
        root: &DrawingArea<DB, Shift>,
        title: &str,
        x_desc: &str,
        y_desc: &str,
        series: &[Line],
    ) -> std::result::Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let pts = series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 1.0_f64);
        for &(x, y) in pts {
            (x0, x1, y1) = (x0.min(x), x1.max(x), y1.max(y));
        }
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x0.max(1e-9)..x1.max(x0 * 2.0)).log_scale(), 0.0..y1 * 1.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for (i, line) in series.iter().enumerate() {
            let color = COLORS[(i / 2) % COLORS.len()];
            let style = color.stroke_width(if line.thin { 1 } else { 3 });
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))
                .map_err(err)?
                .label(line.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(line.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)
    }
    render(path, (1000, 560), |r| draw(r, title, x_desc, y_desc, series), |r| draw(r, title, x_desc, y_desc, series))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_chart_is_written_as_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let line = |label: &str, thin, scale| Line {
            label: label.into(),
            thin,
            points: [1.0, 4.0, 16.0, 1024.0].iter().map(|&x: &f64| (x, scale * x.ln_1p())).collect(),
        };
        let series = [line("openblas 1T", false, 10.0), line("openblas 1T: GEMMs alone", true, 12.0)];
        for name in ["s.png", "s.svg"] {
            let path = dir.path().join(name);
            lines(&path, "step GFLOP/s against batch", "batch", "GFLOP/s", &series).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 5_000, "{name}");
        }
        let svg = std::fs::read_to_string(dir.path().join("s.svg")).unwrap();
        assert!(svg.contains("GEMMs alone"));
    }
}
