//! The lesson's own inputs in a real headless Chromium: a digit drawn on
//! the pad with the mouse and with a finger is explained after each stroke,
//! a student in a class sees the teacher's drawing and its map, and a
//! picture taken with Chromium's fake camera is explained; where the page
//! is no secure context, the camera panel says why and offers the device's
//! own camera instead.

use std::time::Duration;

use fantoccini::actions::{
    InputSource, MouseActions, PointerAction, TouchActions, MOUSE_BUTTON_LEFT,
};
use fantoccini::{Client, Locator};
use lens_tests::browser::{
    canvas_pixels, click, heat_pixels, open_browser, open_browser_with, save_screenshot,
    set_viewport, shown_explanation, start_chromedriver, status, text_of, wait_for, wait_for_text,
    wait_until_not_running,
};
use lens_tests::{start_worker, temp_folder};
use serde_json::json;

/// How a stroke is drawn.
#[derive(Clone, Copy, Debug)]
enum Pen {
    Mouse,
    Finger,
}

/// One stroke on the pad along `points` (CSS pixels from the pad's
/// centre), with the mouse or a finger: real pointer input from the
/// browser, not events made up in JavaScript.
async fn stroke(client: &Client, pen: Pen, points: &[(f64, f64)]) {
    let pad = wait_for(client, "drawing-pad").await;
    let mut moves = vec![PointerAction::MoveToElement {
        element: pad.clone(),
        duration: None,
        x: points[0].0,
        y: points[0].1,
    }];
    moves.push(PointerAction::Down {
        button: MOUSE_BUTTON_LEFT,
    });
    for &(x, y) in &points[1..] {
        moves.push(PointerAction::MoveToElement {
            element: pad.clone(),
            duration: Some(Duration::from_millis(40)),
            x,
            y,
        });
    }
    moves.push(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    match pen {
        Pen::Mouse => {
            let actions = moves
                .into_iter()
                .fold(MouseActions::new("mouse".into()), |a, m| a.then(m));
            client.perform_actions(actions).await.unwrap();
        }
        Pen::Finger => {
            let actions = moves
                .into_iter()
                .fold(TouchActions::new("finger".into()), |a, m| a.then(m));
            client.perform_actions(actions).await.unwrap();
        }
    }
    client.release_actions().await.unwrap();
}

/// Starts timing a stroke: the time the pen lifts, the time the run it
/// starts first paints a map (its coarse map or first tile), and the time
/// it is finished (its status turns "done").
async fn time_next_stroke(client: &Client) {
    client
        .execute(
            r#"const pad = document.querySelector('[data-testid=drawing-pad]');
               const status = document.querySelector('[data-testid=status]');
               const t = window.strokeTiming = { lifted: null, started: false, first: null, painted: null };
               pad.addEventListener('pointerup', () => { t.lifted = performance.now(); }, { once: true });
               const watch = new MutationObserver(() => {
                 if (t.lifted === null) return;
                 const now = performance.now();
                 if (status.dataset.state !== 'done') t.started = true;
                 if (t.started && t.first === null && (status.dataset.coarseMs || status.dataset.firstTileMs)) t.first = now;
                 if (t.started && status.dataset.state === 'done') {
                   t.painted = now;
                   if (t.first === null) t.first = now;
                   watch.disconnect();
                 }
               });
               watch.observe(status, { attributes: true });"#,
            vec![],
        )
        .await
        .unwrap();
}

/// Milliseconds from the end of the timed stroke to its first painted map
/// and to its finished map.
async fn stroke_to_map_ms(client: &Client) -> (f64, f64) {
    for _ in 0..600 {
        let timing = client
            .execute("return window.strokeTiming;", vec![])
            .await
            .unwrap();
        if let (Some(lifted), Some(first), Some(painted)) = (
            timing["lifted"].as_f64(),
            timing["first"].as_f64(),
            timing["painted"].as_f64(),
        ) {
            return (first - lifted, painted - lifted);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stroke's map was never painted");
}

/// Waits until the page shows a finished run other than `before`.
async fn wait_for_new_run(client: &Client, before: Option<&str>) -> String {
    for _ in 0..600 {
        if let Some(shown) = shown_explanation(client).await {
            if Some(shown.as_str()) != before {
                assert_eq!(wait_until_not_running(client).await, "done");
                return shown;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new run after the stroke");
}

/// The input canvas's bright pixels (the drawing, as the worker saw it).
async fn inked_input_pixels(client: &Client) -> usize {
    let count = client
        .execute(
            r#"const c = document.querySelector('[data-testid=input-canvas]');
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let n = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] > 128) n++; } return n;"#,
            vec![],
        )
        .await
        .unwrap();
    count.as_u64().unwrap() as usize
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drawn_digit_is_explained_after_each_stroke_by_mouse_and_by_finger() {
    let address = start_worker().await;
    let driver = start_chromedriver();
    let client = open_browser(&driver, &temp_folder("chromium-drawing")).await;
    client.goto(&format!("http://{address}/")).await.unwrap();
    wait_for(&client, "drawing-pad").await;
    assert_eq!(
        status(&client, "data-state").await,
        "idle",
        "nothing runs before a stroke"
    );

    // A "1" with the mouse: one run, whose input is the drawing.
    time_next_stroke(&client).await;
    stroke(
        &client,
        Pen::Mouse,
        &[(0.0, -70.0), (0.0, -20.0), (0.0, 30.0), (0.0, 70.0)],
    )
    .await;
    let mut timings = vec![stroke_to_map_ms(&client).await];
    let first = wait_for_new_run(&client, None).await;
    assert!(
        inked_input_pixels(&client).await > 20,
        "the input is the drawing"
    );
    let first_map = heat_pixels(&client).await;

    // A finger adds a bar: a second run with another map.
    time_next_stroke(&client).await;
    stroke(
        &client,
        Pen::Finger,
        &[(-60.0, -70.0), (0.0, -70.0), (60.0, -70.0)],
    )
    .await;
    timings.push(stroke_to_map_ms(&client).await);
    let second = wait_for_new_run(&client, Some(&first)).await;
    assert_ne!(
        heat_pixels(&client).await,
        first_map,
        "the map follows the pen"
    );

    // More strokes, alternating pens, for the figure the closing note gives.
    let mut last = second;
    for i in 0..8 {
        let pen = if i % 2 == 0 { Pen::Mouse } else { Pen::Finger };
        let x = -50.0 + 12.0 * i as f64;
        time_next_stroke(&client).await;
        stroke(
            &client,
            pen,
            &[(x, 10.0), (x + 20.0, 40.0), (x + 40.0, 60.0)],
        )
        .await;
        timings.push(stroke_to_map_ms(&client).await);
        last = wait_for_new_run(&client, Some(&last)).await;
    }
    let (first, finished): (Vec<f64>, Vec<f64>) = timings.iter().copied().unzip();
    println!(
        "end of stroke to first map: median {:.0} ms, to finished map: median {:.0} ms, over {} strokes ({:?})",
        median(first.clone()),
        median(finished.clone()),
        timings.len(),
        timings
            .iter()
            .map(|(a, b)| (a.round(), b.round()))
            .collect::<Vec<_>>()
    );
    assert!(
        first.iter().zip(&finished).all(|(a, b)| a < b),
        "a map is painted before the run finishes: {timings:?}"
    );

    // Clearing wipes the pad and starts nothing.
    click(&client, "drawing-clear").await;
    let blank = client
        .execute(
            r#"const c = document.querySelector('[data-testid=drawing-pad]');
               return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).every((v, i) => i % 4 == 3 || v == 0);"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(blank, json!(true));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        shown_explanation(&client).await.as_deref(),
        Some(last.as_str())
    );

    for (width, height, name) in [(1920, 1080, "drawing-1920"), (390, 844, "drawing-390")] {
        set_viewport(&client, width, height).await;
        stroke(
            &client,
            Pen::Mouse,
            &[(30.0, -60.0), (0.0, 0.0), (-20.0, 60.0)],
        )
        .await;
        last = wait_for_new_run(&client, Some(&last)).await;
        scroll_to(&client, "drawing-pad").await;
        save_screenshot(&client, name).await;
        // With the pad in view, the map is on the screen too: the main one
        // beside the controls on a wide screen, a copy beside the pad on a
        // phone, painted like the main one.
        let on_screen = client
            .execute(
                r#"const seen = id => {
                     const e = document.querySelector(`[data-testid=${id}]`);
                     const r = e.getBoundingClientRect();
                     return r.width > 0 && r.top >= 0 && r.bottom <= innerHeight;
                   };
                   return [seen('drawing-pad'), seen('heatmap-canvas'), seen('live-map-canvas')];"#,
                vec![],
            )
            .await
            .unwrap();
        let wide = width > 1060;
        assert_eq!(on_screen, json!([true, wide, !wide]), "{name}");
        if !wide {
            let copy = canvas_pixels(&client, "live-map-canvas").await;
            assert_eq!(copy, heat_pixels(&client).await, "the copy is the map");
        }
    }
    client.close().await.unwrap();
}

/// Scrolls the element into the middle of the screen.
async fn scroll_to(client: &Client, testid: &str) {
    client
        .execute(
            &format!("document.querySelector('[data-testid={testid}]').scrollIntoView({{block: 'center'}});"),
            vec![],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_sees_the_teachers_drawing_and_its_map() {
    let address = start_worker().await;
    let driver = start_chromedriver();
    let teacher = open_browser(&driver, &temp_folder("chromium-drawing-teacher")).await;
    teacher.goto(&format!("http://{address}/")).await.unwrap();
    click(&teacher, "open-class").await;
    let code = text_of(&teacher, "class-code").await;
    let student = open_browser(&driver, &temp_folder("chromium-drawing-student")).await;
    student
        .goto(&format!("http://{address}/?join={code}"))
        .await
        .unwrap();
    wait_for_text(&teacher, "followers", |t| t == "1 student following").await;
    set_viewport(&student, 390, 844).await;

    stroke(
        &teacher,
        Pen::Mouse,
        &[(-40.0, -60.0), (40.0, -60.0), (-20.0, 70.0)],
    )
    .await;
    let drawn = wait_for_new_run(&teacher, None).await;
    let seen = wait_for_new_run(&student, None).await;
    assert_eq!(seen, drawn, "the student follows the teacher's drawing");
    assert!(inked_input_pixels(&student).await > 20);
    assert_eq!(heat_pixels(&student).await, heat_pixels(&teacher).await);
    let input = |c: &Client| {
        let c = c.clone();
        async move {
            c.execute(
                r#"const c = document.querySelector('[data-testid=input-canvas]');
                   return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"#,
                vec![],
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(
        input(&student).await,
        input(&teacher).await,
        "the same drawing"
    );
    save_screenshot(&student, "drawing-student-390").await;
    teacher.close().await.unwrap();
    student.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_from_the_camera_is_explained() {
    let address = start_worker().await;
    let driver = start_chromedriver();
    let client = open_browser_with(
        &driver,
        &temp_folder("chromium-camera"),
        &[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
        ],
    )
    .await;
    client
        .goto(&format!(
            "http://{address}/?model=efficientnet-lite0&k=10&stride=10"
        ))
        .await
        .unwrap();
    wait_for(&client, "preset-coffee.png").await;
    click(&client, "camera-open").await;
    // Snapping waits for the first frame.
    for _ in 0..200 {
        let width = client
            .execute(
                "return document.querySelector('[data-testid=camera-view]').videoWidth;",
                vec![],
            )
            .await
            .unwrap();
        if width.as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    click(&client, "camera-snap").await;
    let run = wait_for_new_run(&client, None).await;
    assert!(!run.is_empty());
    assert!(!status(&client, "data-tiles").await.is_empty());
    // The fake camera's frame, not a preset, is the input: no preset is marked.
    let marked = client
        .execute(
            "return document.querySelectorAll('.preset.selected').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(marked, json!(0));
    let classes = text_of(&client, "probabilities").await;
    assert!(!classes.is_empty());
    for (width, height, name) in [(1920, 1080, "camera-1920"), (390, 844, "camera-390")] {
        set_viewport(&client, width, height).await;
        scroll_to(&client, "camera").await;
        save_screenshot(&client, name).await;
    }
    click(&client, "camera-close").await;
    wait_for(&client, "camera-open").await;
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secure_context_the_camera_panel_says_why() {
    let address = start_worker().await;
    let driver = start_chromedriver();
    // A name other than localhost over plain HTTP: no secure context.
    let rule = format!(
        "--host-resolver-rules=MAP lens-classroom.test {}",
        address.ip()
    );
    let client = open_browser_with(&driver, &temp_folder("chromium-insecure"), &[&rule]).await;
    client
        .goto(&format!("http://lens-classroom.test:{}/", address.port()))
        .await
        .unwrap();
    let why = text_of(&client, "camera-problem").await;
    assert!(
        why.contains("HTTPS") && why.contains("lens-classroom.test"),
        "{why}"
    );
    let file = wait_for(&client, "camera-file").await;
    assert_eq!(
        file.attr("capture").await.unwrap().as_deref(),
        Some("environment")
    );
    assert!(
        client
            .find(Locator::Css("[data-testid=camera-open]"))
            .await
            .is_err(),
        "no live camera button where it cannot work"
    );
    client.close().await.unwrap();
}
