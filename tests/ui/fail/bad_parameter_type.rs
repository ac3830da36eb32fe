use skillbridge::skill;

/// Neither `Deserialize` nor `JsonSchema`.
struct Point {
    x: f64,
    y: f64,
}

/// Measures the distance from the origin.
#[skill]
fn distance(point: Point) -> f64 {
    (point.x * point.x + point.y * point.y).sqrt()
}

fn main() {}
