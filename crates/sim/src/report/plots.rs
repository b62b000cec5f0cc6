//! Plots of a run, each as PNG and SVG (plotters): the offered rate with
//! each controller's frequency over time; energy against drops; the
//! oracle gap.
//!
//! Text needs a TTF font, read once from the path given (DejaVu Sans by
//! default); without one, no plot is drawn and the caller is told why.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::run::RunReport;

/// Where Debian and most distributions keep DejaVu Sans.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers `path` as the plots' sans-serif font (once per process).
pub fn load_font(path: &Path) -> anyhow::Result<()> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a usable TTF font", path.display()))
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("no font for the plots: {e}"))
}

/// One color per controller (Okabe–Ito, then two more), black for rates.
const COLORS: [RGBColor; 9] = [
    RGBColor(230, 159, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
    RGBColor(110, 60, 160),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

type Draw<'a, B> = DrawingArea<B, Shift>;

fn timeline<B: DrawingBackend>(root: &Draw<'_, B>, r: &RunReport, title: &str) -> anyhow::Result<()>
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let n = r.results.len();
    let panels = root.split_evenly((n + 1, 1));
    let t_end = r.duration_s.max(1e-3);
    let peak = r.rate_series.iter().fold(1.0f64, |m, p| m.max(p.1)) / 1e6;
    let mut chart = ChartBuilder::on(&panels[0])
        .caption(title, ("sans-serif", 16))
        .margin(4)
        .x_label_area_size(18)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_end, 0.0..peak * 1.05)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .y_desc("Mpps")
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .draw_series(LineSeries::new(
            r.rate_series.iter().map(|(t, p)| (*t, p / 1e6)),
            &BLACK,
        ))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let fmax = r
        .results
        .iter()
        .flat_map(|c| c.freq_series.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    for (i, c) in r.results.iter().enumerate() {
        let mut chart = ChartBuilder::on(&panels[i + 1])
            .caption(&c.controller, ("sans-serif", 12))
            .margin(4)
            .x_label_area_size(18)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_end, 0.0..fmax * 1.05)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        chart
            .configure_mesh()
            .y_desc("MHz")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        chart
            .draw_series(LineSeries::new(c.freq_series.iter().copied(), &color(i)))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn energy_drops<B: DrawingBackend>(root: &Draw<'_, B>, r: &RunReport) -> anyhow::Result<()>
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let max_drop = r.results.iter().fold(0.0f64, |m, c| m.max(drop_ppm(c)));
    let mut chart = ChartBuilder::on(root)
        .caption("energy against drops", ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..(max_drop * 1.5).max(1.0), 0.0..110.0)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("packets dropped per million offered")
        .y_desc("energy, % of static max")
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (i, c) in r.results.iter().enumerate() {
        let p = (drop_ppm(c), c.energy_pct_of_static_max);
        chart
            .draw_series(std::iter::once(Circle::new(p, 5, color(i).filled())))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(c.controller.clone())
            .legend(move |(x, y)| Circle::new((x, y), 4, color(i).filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn oracle_gap<B: DrawingBackend>(root: &Draw<'_, B>, r: &RunReport) -> anyhow::Result<()>
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bars: Vec<(usize, f64)> = r
        .results
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.energy_ratio_to_oracle.map(|x| (i, (x - 1.0) * 100.0)))
        .collect();
    let top = bars.iter().fold(1.0f64, |m, b| m.max(b.1));
    let n = r.results.len();
    let mut chart = ChartBuilder::on(root)
        .caption("energy above the oracle's", ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(160)
        .build_cartesian_2d(0.0..top * 1.1, (0..n).into_segmented())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let names: Vec<String> = r.results.iter().map(|c| c.controller.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("% above the oracle's energy")
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .draw_series(bars.iter().map(|(i, gap)| {
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(*i)),
                    (*gap, SegmentValue::Exact(*i + 1)),
                ],
                color(*i).filled(),
            )
        }))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

fn drop_ppm(c: &crate::metrics::ControllerResult) -> f64 {
    if c.offered > 0.0 {
        c.dropped / c.offered * 1e6
    } else {
        0.0
    }
}

/// Writes `<stem>-timeline`, `<stem>-energy-drops` and `<stem>-oracle-gap`
/// as `.png` and `.svg` into `dir`; returns the PNG paths.
pub fn write_all(
    dir: &Path,
    stem: &str,
    r: &RunReport,
    title: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut pngs = Vec::new();
    let height = 120 * u32::try_from(r.results.len() + 1).unwrap_or(8);
    let file = |kind: &str, ext: &str| dir.join(format!("{stem}-{kind}.{ext}"));
    {
        let png = file("timeline", "png");
        timeline(
            &BitMapBackend::new(&png, (900, height)).into_drawing_area(),
            r,
            title,
        )?;
        timeline(
            &SVGBackend::new(&file("timeline", "svg"), (900, height)).into_drawing_area(),
            r,
            title,
        )?;
        pngs.push(png);
    }
    {
        let png = file("energy-drops", "png");
        energy_drops(&BitMapBackend::new(&png, (700, 450)).into_drawing_area(), r)?;
        energy_drops(
            &SVGBackend::new(&file("energy-drops", "svg"), (700, 450)).into_drawing_area(),
            r,
        )?;
        pngs.push(png);
    }
    if r.results.iter().any(|c| c.energy_ratio_to_oracle.is_some()) {
        let png = file("oracle-gap", "png");
        oracle_gap(&BitMapBackend::new(&png, (700, 400)).into_drawing_area(), r)?;
        oracle_gap(
            &SVGBackend::new(&file("oracle-gap", "svg"), (700, 400)).into_drawing_area(),
            r,
        )?;
        pngs.push(png);
    }
    Ok(pngs)
}
