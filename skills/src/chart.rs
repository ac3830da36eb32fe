//! Bar charts as images: the model gets a PNG it can look at, plus the numbers as text.

use skillbridge::skill;
use skillbridge::skill::{Content, SkillError};

/// The most bars one chart draws.
const MAX_BARS: usize = 40;
const WIDTH: u32 = 480;
const HEIGHT: u32 = 240;
const MARGIN: u32 = 16;
const BACKGROUND: [u8; 3] = [0xff, 0xff, 0xff];
const AXIS: [u8; 3] = [0x33, 0x33, 0x33];
/// Bars alternate between two shades so that neighbours stay distinguishable.
const BAR_COLORS: [[u8; 3]; 2] = [[0x2b, 0x6c, 0xb0], [0x5a, 0x9b, 0xd8]];

/// Draws a bar chart of labelled values and returns it as a PNG image, with the values as text.
#[skill(timeout = "10s", title = "Bar chart", read_only, open_world = false, tags = ["chart"])]
pub fn bar_chart(
    /// What the chart shows; repeated in the text.
    title: String,
    /// One label per bar, in order.
    labels: Vec<String>,
    /// One value per bar, zero or more; same count as `labels`, at most 40.
    values: Vec<f64>,
) -> Result<Content, SkillError> {
    if labels.len() != values.len() {
        return Err(format!(
            "labels has {} entries but values has {}; give one value per label",
            labels.len(),
            values.len()
        )
        .into());
    }
    if values.is_empty() || values.len() > MAX_BARS {
        return Err(format!("values: give 1 to {MAX_BARS} bars").into());
    }
    if let Some(bad) = values.iter().position(|value| !value.is_finite() || *value < 0.0) {
        return Err(format!("values.{bad}: {} is not a finite number of zero or more", values[bad]).into());
    }
    let png = encode_png(&draw_bars(&values))?;
    let listing = labels
        .iter()
        .zip(&values)
        .map(|(label, value)| format!("{label}: {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Content::new()
        .text(format!(
            "{title} ({} bars, {WIDTH}x{HEIGHT} PNG below). {listing}",
            values.len()
        ))
        .image_data("image/png", &png))
}

/// RGB pixels, row by row.
fn draw_bars(values: &[f64]) -> Vec<u8> {
    let mut pixels = [BACKGROUND].repeat((WIDTH * HEIGHT) as usize).concat();
    let mut fill = |x0: u32, y0: u32, x1: u32, y1: u32, color: [u8; 3]| {
        for y in y0..y1.min(HEIGHT) {
            for x in x0..x1.min(WIDTH) {
                let at = ((y * WIDTH + x) * 3) as usize;
                pixels[at..at + 3].copy_from_slice(&color);
            }
        }
    };
    let plot_height = HEIGHT - 2 * MARGIN;
    let plot_width = WIDTH - 2 * MARGIN;
    let baseline = HEIGHT - MARGIN;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let slot = plot_width / values.len() as u32;
    let gap = (slot / 5).max(1);
    for (index, value) in values.iter().enumerate() {
        let height = if max > 0.0 {
            ((value / max) * f64::from(plot_height)).round() as u32
        } else {
            0
        };
        let x0 = MARGIN + index as u32 * slot + gap / 2;
        fill(x0, baseline - height, x0 + slot - gap, baseline, BAR_COLORS[index % 2]);
    }
    fill(MARGIN, baseline, WIDTH - MARGIN, baseline + 2, AXIS);
    fill(MARGIN - 2, MARGIN, MARGIN, baseline + 2, AXIS);
    pixels
}

fn encode_png(pixels: &[u8]) -> Result<Vec<u8>, SkillError> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tallest_bar_reaches_the_top_of_the_plot() {
        let pixels = draw_bars(&[1.0, 4.0]);
        let pixel = |x: u32, y: u32| {
            let at = ((y * WIDTH + x) * 3) as usize;
            [pixels[at], pixels[at + 1], pixels[at + 2]]
        };
        let second_bar_x = MARGIN + (WIDTH - 2 * MARGIN) / 2 + 40;
        assert_eq!(pixel(second_bar_x, MARGIN), BAR_COLORS[1]);
        assert_eq!(pixel(second_bar_x, MARGIN - 1), BACKGROUND);
        let first_bar_x = MARGIN + 40;
        assert_eq!(pixel(first_bar_x, HEIGHT - MARGIN - 1), BAR_COLORS[0]);
        assert_eq!(pixel(first_bar_x, HEIGHT - MARGIN - 60), BACKGROUND);
    }

    #[test]
    fn mismatched_inputs_explain() {
        let error = bar_chart("t".into(), vec!["a".into()], vec![]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "labels has 1 entries but values has 0; give one value per label"
        );
        let error = bar_chart("t".into(), vec!["a".into()], vec![-1.0]).unwrap_err();
        assert_eq!(error.to_string(), "values.0: -1 is not a finite number of zero or more");
    }
}
