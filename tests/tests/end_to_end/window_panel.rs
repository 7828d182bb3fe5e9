//! Looking inside a window in a real headless Chromium: clicking the
//! finished map opens what the method fed the network there, and the
//! evidence the panel shows is the stored map's value at that window, for
//! efficient PDA and for PDA (whose every sample is drawn in).

use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, Locator};
use lens_proto::v1::explain_event::Event;
use lens_tests::browser::{
    click, open_browser, save_screenshot, set_viewport, shown_explanation, start_chromedriver,
    wait_for, wait_until_not_running,
};
use lens_tests::{native_client, start_worker, temp_folder, watch_events};

/// The stored map of explanation `id` (28 x 28).
async fn stored_map(address: std::net::SocketAddr, id: &str) -> Vec<f32> {
    let mut worker = native_client(address).await;
    let events = watch_events(&mut worker, id).await.unwrap();
    events
        .into_iter()
        .find_map(|(_, e)| match e.event {
            Some(Event::Tile(t)) if t.width == 28 && t.height == 28 => Some(t.values),
            _ => None,
        })
        .expect("the stored map as one tile")
}

/// Clicks the map `dx`, `dy` CSS pixels from its centre.
async fn click_map(client: &Client, dx: f64, dy: f64) {
    let map = wait_for(client, "heatmap-canvas").await;
    let actions = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: map,
            duration: None,
            x: dx,
            y: dy,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    client.perform_actions(actions).await.unwrap();
    client.release_actions().await.unwrap();
}

/// The panel's evidence once it shows the window at (`x`, `y`), and how
/// many pictures it draws.
async fn panel_for(client: &Client, x: u32, y: u32) -> (f32, usize) {
    for _ in 0..300 {
        if let Ok(panel) = client
            .find(Locator::Css("[data-testid=window-panel] h2"))
            .await
        {
            if panel
                .text()
                .await
                .unwrap()
                .ends_with(&format!("at ({x}, {y})"))
            {
                let value = wait_for(client, "window-evidence")
                    .await
                    .attr("data-value")
                    .await
                    .unwrap()
                    .unwrap();
                let pictures = client
                    .find_all(Locator::Css("[data-testid=window-pictures] canvas"))
                    .await
                    .unwrap()
                    .len();
                return (value.parse().unwrap(), pictures);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = client
        .execute(
            r#"const c = document.querySelector('[data-testid=heatmap-canvas]').getBoundingClientRect();
               const h = document.querySelector('[data-testid=window-panel] h2');
               return [c.width, c.height, h ? h.textContent : null];"#,
            vec![],
        )
        .await
        .unwrap();
    panic!("the window panel never showed the window at ({x}, {y}): {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_panel_shows_the_maps_own_evidence() {
    let address = start_worker().await;
    let driver = start_chromedriver();
    let client = open_browser(&driver, &temp_folder("chromium-window-panel")).await;
    for (query, pictures) in [
        ("method=efficient&k=4&stride=4", 2),
        ("method=pda&S=5&k=4&stride=4", 6),
    ] {
        client
            .goto(&format!("http://{address}/?{query}"))
            .await
            .unwrap();
        click(&client, "preset-7").await;
        assert_eq!(wait_until_not_running(&client).await, "done");
        let id = shown_explanation(&client).await.unwrap();
        let map = stored_map(address, &id).await;
        // The map is 280 CSS pixels for 28: the centre is pixel (14, 14),
        // in the window at (12, 12); 90 px up and left is (5, 5), in the
        // window at (4, 4) (every pixel of a window has its value here).
        click_map(&client, -90.0, -90.0).await;
        let (evidence, _) = panel_for(&client, 4, 4).await;
        assert_eq!(evidence, map[5 * 28 + 5], "{query}");
        click_map(&client, 0.0, 0.0).await;
        let (evidence, drawn) = panel_for(&client, 12, 12).await;
        assert_eq!(evidence, map[14 * 28 + 14], "{query}");
        assert_eq!(drawn, pictures, "{query}: the image and each replacement");
    }
    for (width, height, name) in [(1920, 1080, "window-1920"), (390, 844, "window-390")] {
        set_viewport(&client, width, height).await;
        client
            .execute(
                "document.querySelector('[data-testid=window-panel]').scrollIntoView({block: 'start'});",
                vec![],
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        save_screenshot(&client, name).await;
    }
    click(&client, "window-close").await;
    assert!(client
        .find(Locator::Css("[data-testid=window-panel]"))
        .await
        .is_err());
    client.close().await.unwrap();
}
