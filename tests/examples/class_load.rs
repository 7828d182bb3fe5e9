//! A class behind one school address (issue 29, item 4): `evidence-lens
//! serve` with the product's default limits, a teacher and 30 students, each
//! a browser of its own (its own `x-lens-browser` id) and every one of them
//! at 127.0.0.1, as a class behind a school's NAT.
//!
//! The teacher opens a class and every 30-60 s explains a held-out digit and
//! shows it (Teach). Each student joins by typing the code (one in three
//! types a wrong one first), follows the class and watches each explanation
//! it shows, and every 10-20 s draws a digit: a stroke, then two or three
//! more 0.3-0.8 s apart, each stroke explained with the page's default
//! settings for the digits (its new run replaces the last one if that one
//! is still waiting; a stream whose stroke was followed by another is
//! dropped at its next event, as the page drops it).
//!
//! At the end: runs asked, finished, replaced in the queue, dropped for a
//! newer stroke, refused (and why), failed; for each drawing's last stroke
//! the time from the stroke to its first map and to its finished map
//! (p50/p95); typed joins refused; the worker's peak memory.
//!
//! Build the worker first (`cargo build --release -p lens-worker --bin
//! evidence-lens`), then:
//! cargo run --release -p lens-tests --example class_load -- [SECONDS [BUDGET]]
//! (default 300 s; BUDGET, the share of windows the students' runs compute,
//! as the page's "Windows computed": by default the model's default, as
//! the page starts with).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lens_proto::v1::{
    explain_event::Event, ClassView, ExplainRequest, FollowClassRequest, ListModelsRequest, Method,
    OpenClassRequest, TeachRequest,
};
use lens_tests::{
    browser_client, presets, process_status, temp_folder, BrowserClient, ChildWorker,
};
use rand::{Rng, SeedableRng};
use tokio::time::{sleep, Instant};
use tonic::Code;

const STUDENTS: usize = 30;

#[derive(Default)]
struct Tally {
    asked: u64,
    finished: u64,
    replaced: u64,
    dropped_for_newer: u64,
    refused: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    first_map_ms: Vec<f64>,
    finished_ms: Vec<f64>,
    typos: u64,
    joins: u64,
    joins_refused: u64,
    views_watched: u64,
}

type Shared = Arc<Mutex<Tally>>;

fn tally(shared: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The page's request for a drawn digit: the digits' defaults.
#[derive(Clone)]
struct Defaults {
    method: i32,
    window: u32,
    stride: u32,
    samples: u32,
    /// The share of windows computed (`None`: every window).
    budget: Option<f64>,
}

/// The first `part` of a digit's ink, column by column from the left: a
/// drawing after some of its strokes. `hand` (one per drawing) moves the
/// digit and adds a stray dot, so no two drawings are the same request
/// (an identical one would be answered from the store at once).
fn partial(png: &[u8], part: f64, hand: (i64, i64, u32)) -> Vec<u8> {
    let original = image::load_from_memory(png).unwrap().to_luma8();
    let (width, height) = original.dimensions();
    let (dx, dy, dot) = hand;
    let digit = image::GrayImage::from_fn(width, height, |x, y| {
        let (from_x, from_y) = (x as i64 - dx, y as i64 - dy);
        let inside = (0..width as i64).contains(&from_x) && (0..height as i64).contains(&from_y);
        if (x * height + y) == dot % (width * height) && x < 3 {
            image::Luma([128])
        } else if inside {
            *original.get_pixel(from_x as u32, from_y as u32)
        } else {
            image::Luma([0])
        }
    });
    let inked: Vec<u32> = (0..width)
        .filter(|&x| (0..height).any(|y| digit.get_pixel(x, y).0[0] > 40))
        .collect();
    let (left, right) = (inked[0], inked[inked.len() - 1]);
    let cut = left + ((right - left + 1) as f64 * part).ceil() as u32;
    let mut drawn = digit.clone();
    for (x, _, pixel) in drawn.enumerate_pixels_mut() {
        if x >= cut {
            pixel.0[0] = 0;
        }
    }
    let mut bytes = Vec::new();
    image::DynamicImage::ImageLuma8(drawn)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// One stroke's run, read as the page reads it: dropped at its next event
/// once a newer stroke exists. Counts what happened; for a drawing's last
/// stroke, times its first map and its finished map.
async fn stroke_run(
    mut client: BrowserClient,
    request: ExplainRequest,
    stroke: (u64, Arc<std::sync::atomic::AtomicU64>, bool),
    shared: Shared,
) {
    let (number, latest, last) = stroke;
    let newer = || latest.load(std::sync::atomic::Ordering::SeqCst) != number;
    let asked = Instant::now();
    tally(&shared).asked += 1;
    let mut stream = match client.explain(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return refused_or_failed(&shared, status),
    };
    let mut first_map = None;
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                if newer() && !last {
                    tally(&shared).dropped_for_newer += 1;
                    return;
                }
                match event.event {
                    Some(Event::Tile(_)) if first_map.is_none() => {
                        first_map = Some(asked.elapsed().as_secs_f64() * 1000.0)
                    }
                    Some(Event::Finished(_)) => {
                        let mut tally = tally(&shared);
                        tally.finished += 1;
                        if last {
                            tally
                                .finished_ms
                                .push(asked.elapsed().as_secs_f64() * 1000.0);
                            tally.first_map_ms.extend(first_map);
                        }
                        return;
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                *tally(&shared)
                    .failed
                    .entry("ended early".into())
                    .or_default() += 1;
                return;
            }
            Err(status)
                if status.code() == Code::Cancelled && status.message().contains("newer") =>
            {
                tally(&shared).replaced += 1;
                return;
            }
            Err(status) => return refused_or_failed(&shared, status),
        }
    }
}

fn refused_or_failed(shared: &Shared, status: tonic::Status) {
    let why = format!("{:?}: {}", status.code(), status.message());
    let mut tally = tally(shared);
    let counts = if status.code() == Code::ResourceExhausted {
        &mut tally.refused
    } else {
        &mut tally.failed
    };
    *counts.entry(why).or_default() += 1;
}

#[allow(clippy::too_many_arguments)]
async fn student(
    n: usize,
    address: std::net::SocketAddr,
    code: String,
    digits: Arc<Vec<Vec<u8>>>,
    defaults: Defaults,
    until: Instant,
    shared: Shared,
) {
    let budget = defaults.budget;
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let mut client = browser_client(address, &format!("student-browser-{n:02}")).await;
    sleep(Duration::from_millis(rng.random_range(0..5000))).await;
    if n.is_multiple_of(3) {
        tally(&shared).typos += 1;
        let typo = FollowClassRequest {
            code: "ZZZZZZ".into(),
            teacher_secret: String::new(),
        };
        let _ = client.follow_class(typo).await;
    }
    tally(&shared).joins += 1;
    let follow = FollowClassRequest {
        code,
        teacher_secret: String::new(),
    };
    match client.follow_class(follow).await {
        Ok(stream) => {
            let (mut watcher, shared) = (client.clone(), shared.clone());
            tokio::spawn(async move {
                let mut views = stream.into_inner();
                let mut seen = String::new();
                while let Ok(Some(event)) = views.message().await {
                    let Some(id) = event.view.map(|v| v.explanation_id) else {
                        continue;
                    };
                    if id.is_empty() || id == seen {
                        continue;
                    }
                    seen = id.clone();
                    let watch = lens_proto::v1::WatchRequest { id };
                    if let Ok(run) = watcher.watch(watch).await {
                        let mut run = run.into_inner();
                        while let Ok(Some(_)) = run.message().await {}
                        tally(&shared).views_watched += 1;
                    }
                }
            });
        }
        Err(status) => {
            eprintln!("student {n}: typed join refused: {status:?}");
            tally(&shared).joins_refused += 1;
        }
    }
    let latest = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut stroke = 0;
    while Instant::now() < until {
        sleep(Duration::from_millis(rng.random_range(10_000..20_000))).await;
        let digit = &digits[rng.random_range(0..digits.len())];
        let hand = (
            rng.random_range(-3..=3),
            rng.random_range(-3..=3),
            rng.random::<u32>(),
        );
        let strokes = rng.random_range(3..=4);
        for k in 1..=strokes {
            stroke += 1;
            latest.store(stroke, std::sync::atomic::Ordering::SeqCst);
            let request = ExplainRequest {
                image: partial(digit, k as f64 / strokes as f64, hand),
                method: defaults.method,
                window: defaults.window,
                stride: defaults.stride,
                samples: Some(defaults.samples),
                budget,
                ..Default::default()
            };
            let run = (stroke, latest.clone(), k == strokes);
            tokio::spawn(stroke_run(client.clone(), request, run, shared.clone()));
            if k < strokes {
                sleep(Duration::from_millis(rng.random_range(300..800))).await;
            }
        }
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let at = ((values.len() - 1) as f64 * p).round() as usize;
    values[at]
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(300, |s| s.parse().expect("SECONDS"));
    let asked_budget: Option<f64> = std::env::args()
        .nth(2)
        .map(|b| b.parse().expect("BUDGET, between 0 and 1"));
    let worker = ChildWorker::start(&temp_folder("class-load"));
    let address = worker.address;
    let pid = worker.child.process.id();
    let mut teacher = browser_client(address, "teacher-browser-00").await;
    let digits_info = (teacher
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models)
        .into_iter()
        .find(|m| m.id == "digits")
        .expect("the digits model");
    // The page's default unless asked otherwise (0 from an older worker).
    let budget =
        Some(asked_budget.unwrap_or(digits_info.default_budget)).filter(|b| *b > 0.0 && *b < 1.0);
    let defaults = Defaults {
        method: digits_info.default_method,
        window: digits_info.default_window,
        stride: digits_info.default_stride,
        samples: digits_info.default_samples,
        budget,
    };
    let presets = presets(&mut teacher).await;
    let digits: Arc<Vec<Vec<u8>>> = Arc::new(presets.iter().map(|p| p.png.clone()).collect());
    let opened = teacher
        .open_class(OpenClassRequest {})
        .await
        .unwrap()
        .into_inner();
    println!(
        "class {} on {address}: {STUDENTS} browsers at 127.0.0.1 for {seconds} s; digits: method {:?}, window {}, stride {}, S = {}, windows computed {}",
        opened.code,
        Method::try_from(defaults.method).unwrap_or(Method::Unspecified),
        defaults.window,
        defaults.stride,
        defaults.samples,
        budget.map_or("all".to_string(), |b| format!("{b}"))
    );
    let shared: Shared = Arc::default();
    let until = Instant::now() + Duration::from_secs(seconds);
    let students: Vec<_> = (0..STUDENTS)
        .map(|n| {
            tokio::spawn(student(
                n,
                address,
                opened.code.clone(),
                digits.clone(),
                defaults.clone(),
                until,
                shared.clone(),
            ))
        })
        .collect();
    // The teacher: a held-out digit explained and shown every 30-60 s.
    let peak_kib = Arc::new(Mutex::new(0u64));
    let sampling = {
        let peak_kib = peak_kib.clone();
        tokio::spawn(async move {
            loop {
                let rss: u64 = process_status(pid, "VmRSS")
                    .and_then(|kb| kb.split_whitespace().next()?.parse().ok())
                    .unwrap_or(0);
                {
                    let mut peak = peak_kib.lock().unwrap();
                    *peak = (*peak).max(rss);
                }
                sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut views = 0;
    while Instant::now() < until {
        let digit = &presets[rng.random_range(0..presets.len())];
        let request = ExplainRequest {
            image: digit.png.clone(),
            method: defaults.method,
            window: defaults.window,
            stride: defaults.stride,
            samples: Some(defaults.samples),
            ..Default::default()
        };
        if let Ok(stream) = teacher.explain(request).await {
            let mut stream = stream.into_inner();
            let mut id = String::new();
            while let Ok(Some(event)) = stream.message().await {
                match event.event {
                    Some(Event::Queued(q)) => id = q.id,
                    Some(Event::Started(s)) => id = s.id,
                    _ => {}
                }
                if !id.is_empty() {
                    break;
                }
            }
            let view = ClassView {
                explanation_id: id,
                model: "digits".into(),
                ..Default::default()
            };
            let teach = TeachRequest {
                code: opened.code.clone(),
                teacher_secret: opened.teacher_secret.clone(),
                view: Some(view),
            };
            if teacher.teach(teach).await.is_ok() {
                views += 1;
            }
            tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
        }
        sleep(Duration::from_millis(rng.random_range(30_000..60_000))).await;
    }
    for student in students {
        student.await.unwrap();
    }
    // The last strokes' runs finish.
    sleep(Duration::from_secs(20)).await;
    sampling.abort();
    let mut tally = tally(&shared);
    println!("\nteacher: {views} views shown");
    println!(
        "runs asked {}, finished {}, replaced in the queue by a newer stroke {}, dropped by the student for a newer stroke {}",
        tally.asked, tally.finished, tally.replaced, tally.dropped_for_newer
    );
    println!(
        "refused: {} {:?}",
        tally.refused.values().sum::<u64>(),
        tally.refused
    );
    println!(
        "failed: {} {:?}",
        tally.failed.values().sum::<u64>(),
        tally.failed
    );
    let drawings = tally.finished_ms.len();
    let tally = &mut *tally;
    let (first, finished) = (&mut tally.first_map_ms, &mut tally.finished_ms);
    println!(
        "a drawing's last stroke ({drawings} finished): first map p50 {:.2} s, p95 {:.2} s; finished map p50 {:.2} s, p95 {:.2} s",
        percentile(first, 0.5) / 1000.0,
        percentile(first, 0.95) / 1000.0,
        percentile(finished, 0.5) / 1000.0,
        percentile(finished, 0.95) / 1000.0,
    );
    println!(
        "typed joins {} ({} after a typo), refused {}; class views watched to their end {}",
        tally.joins, tally.typos, tally.joins_refused, tally.views_watched
    );
    println!(
        "worker peak memory (resident, sampled every 0.5 s): {:.0} MiB",
        *peak_kib.lock().unwrap() as f64 / 1024.0
    );
    drop(worker);
}
