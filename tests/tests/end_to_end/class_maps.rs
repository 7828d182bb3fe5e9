//! Every class at once, in a real headless Chromium: after one photo run
//! the page shows the second class's map and the contrast of two classes
//! without a new run, each painted exactly as the palette paints the maps
//! the worker stored; a link names the class shown.

use fantoccini::{Client, Locator};
use lens_proto::palette::{diverging, symmetric_scale};
use lens_proto::v1::explain_event::Event;
use lens_tests::browser::{
    heat_pixels, open_browser, save_screenshot, set_viewport, shown_explanation,
    start_chromedriver, text_of, wait_for, wait_until_not_running,
};
use lens_tests::{native_client, start_worker, temp_folder, watch_events};
use serde_json::json;

/// Counts the page's Explain calls (gRPC-Web goes through fetch).
async fn count_explain_calls(client: &Client) {
    client
        .execute(
            r#"window.explainCalls = 0;
               const fetched = window.fetch;
               window.fetch = function (request, options) {
                 const url = typeof request === 'string' ? request : request.url;
                 if (url.endsWith('/Explain')) window.explainCalls += 1;
                 return fetched.call(this, request, options);
               };"#,
            vec![],
        )
        .await
        .unwrap();
}

async fn explain_calls(client: &Client) -> u64 {
    let calls = client
        .execute("return window.explainCalls;", vec![])
        .await
        .unwrap();
    calls.as_u64().unwrap()
}

/// The palette's pixels for `values` (as the page paints a map).
fn painted(values: &[f32]) -> Vec<u8> {
    let scale = symmetric_scale(values);
    values.iter().flat_map(|&v| diverging(v, scale)).collect()
}

/// Runs `action` (JavaScript) and returns the milliseconds until the
/// map's caption says `caption` and the next frame is drawn.
async fn time_until_caption(client: &Client, action: &str, caption: &str) -> f64 {
    let script = format!(
        r#"const caption = document.querySelector('[data-testid=map-caption]');
           const started = performance.now();
           {action}
           return await new Promise(done => {{
             const check = () => caption.textContent === {caption:?}
               ? requestAnimationFrame(() => done(performance.now() - started))
               : requestAnimationFrame(check);
             check();
           }});"#
    );
    let ms = client.execute(&script, vec![]).await.unwrap();
    ms.as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_switch_and_contrast_without_a_new_run() {
    let address = start_worker().await;
    let driver = start_chromedriver();
    let client = open_browser(&driver, &temp_folder("chromium-class-maps")).await;
    client
        .goto(&format!(
            "http://{address}/?model=efficientnet-lite0&k=10&stride=10"
        ))
        .await
        .unwrap();
    wait_for(&client, "preset-chelsea.png").await;
    // The photo model's sampler offers the window sizes it has statistics for.
    let sizes = text_of(&client, "window-sizes").await;
    assert!(sizes.contains("6, 10, 16, 24"), "{sizes}");
    count_explain_calls(&client).await;
    wait_for(&client, "preset-chelsea.png")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(wait_until_not_running(&client).await, "done");
    let id = shown_explanation(&client).await.expect("a share id");

    // The maps the worker stored for this run: the explained class's and
    // the four next most probable classes'.
    let mut worker = native_client(address).await;
    let mut maps = Vec::new();
    let mut names = Vec::new();
    let mut explained = 0;
    for (_, event) in watch_events(&mut worker, &id).await.unwrap() {
        match event.event {
            Some(Event::Started(s)) => {
                explained = s.explained_class;
                names = s.class_names;
            }
            Some(Event::Tile(t)) => maps.push((explained, t.values)),
            Some(Event::ClassMap(m)) => maps.push((m.class_index, m.values)),
            _ => {}
        }
    }
    assert_eq!(maps.len(), 5, "the top five classes have maps");
    assert_eq!(heat_pixels(&client).await, painted(&maps[0].1));

    // The second class: its stored map, at once, with no new run.
    let (second, second_map) = maps[1].clone();
    let second_name = names[second as usize].clone();
    let switch_ms = time_until_caption(
        &client,
        &format!("document.querySelector('[data-testid=probability-{second}] button').click();"),
        &format!("Evidence for {second_name}"),
    )
    .await;
    assert_eq!(heat_pixels(&client).await, painted(&second_map));
    assert!(client
        .current_url()
        .await
        .unwrap()
        .query()
        .unwrap()
        .contains(&format!("see={second}")));

    // Why the explained class rather than the second? The difference.
    let first_name = names[explained as usize].clone();
    let contrast_ms = time_until_caption(
        &client,
        &format!(
            r#"const a = document.querySelector('[data-testid=contrast-a]');
               a.value = '{explained}'; a.dispatchEvent(new Event('change'));
               const b = document.querySelector('[data-testid=contrast-b]');
               b.value = '{second}'; b.dispatchEvent(new Event('change'));"#
        ),
        &format!("Why {first_name} rather than {second_name}?"),
    )
    .await;
    let difference: Vec<f32> = maps[0]
        .1
        .iter()
        .zip(&second_map)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(heat_pixels(&client).await, painted(&difference));
    let legend = text_of(&client, "legend-quantity").await;
    assert!(
        legend.contains(&format!(
            "for {first_name} minus that for {second_name}, in bits"
        )),
        "{legend}"
    );
    assert_eq!(explain_calls(&client).await, 1, "one run for all of it");
    println!("switch to a class: {switch_ms:.0} ms, to a contrast: {contrast_ms:.0} ms");
    for (width, height, name) in [(1920, 1080, "contrast-1920"), (390, 844, "contrast-390")] {
        set_viewport(&client, width, height).await;
        client
            .execute("window.scrollTo(0, 0);", vec![])
            .await
            .unwrap();
        save_screenshot(&client, name).await;
    }

    // The address names the view: opened again, it shows the contrast.
    let link = client.current_url().await.unwrap();
    assert!(link
        .query()
        .unwrap()
        .contains(&format!("see={explained}-{second}")));
    client.goto(link.as_str()).await.unwrap();
    assert_eq!(wait_until_not_running(&client).await, "done");
    assert_eq!(
        text_of(&client, "map-caption").await,
        format!("Why {first_name} rather than {second_name}?")
    );
    assert_eq!(heat_pixels(&client).await, painted(&difference));
    let b = client
        .find(Locator::Css("[data-testid=contrast-b]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(b.map(|v| json!(v)), Some(json!(second.to_string())));
    client.close().await.unwrap();
}
