use std::collections::HashMap;

use cachemacro::cached;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Point {
    x: i32,
    y: i32,
}

#[cached(key = "tile:<p>", batch(p in points))]
async fn tiles(points: Vec<Point>) -> HashMap<Point, String> {
    points.iter().map(|p| (p.clone(), format!("{},{}", p.x, p.y))).collect()
}

fn main() {}
