//! Classes: a teacher opens one (a short code), and everyone who follows it
//! sees what the teacher shows (the page's settings and the explanation on
//! screen, which they then watch live through its share id). A class lives
//! in the worker's memory: it survives page reloads on either side, and ends
//! when the teacher closes it or after `idle` without the teacher.
//!
//! Each class holds only its latest view (a `watch` channel), so a follower
//! who falls behind skips to the newest view and memory stays bounded.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lens_proto::v1::{ClassEvent, ClassView};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::Status;

use super::status::ServiceError;
use crate::store;

/// Letters and digits that cannot be mistaken for one another on a
/// projector (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LENGTH: usize = 6;
/// Followers of one class at most (a large lecture hall).
pub const MAX_FOLLOWERS: usize = 500;
/// Classes open at once, at most.
pub const MAX_CLASSES: usize = 1000;
/// How long a model id in a class's view may be (it is only echoed).
const MAX_MODEL_ID: usize = 200;

pub struct Classes {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    idle: Duration,
}

struct Room {
    teacher: [u8; 32],
    events: watch::Sender<ClassEvent>,
    last_teacher: Mutex<Instant>,
}

impl Room {
    fn touch(&self) {
        *self.last_teacher.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_teacher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    fn end(&self) {
        self.events.send_modify(|e| e.ended = true);
    }
}

/// A follower's place in a class; leaving (dropping it) updates the count
/// everyone sees.
pub struct Following {
    room: Arc<Room>,
    counted: bool,
    pub events: watch::Receiver<ClassEvent>,
}

impl Drop for Following {
    fn drop(&mut self) {
        if self.counted {
            self.room.events.send_modify(|e| e.followers -= 1);
        }
    }
}

impl Classes {
    pub fn new(idle: Duration) -> Self {
        Classes {
            rooms: Mutex::default(),
            idle,
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the classes whose teacher has been away longer than `idle`.
    pub fn sweep(&self) {
        self.rooms().retain(|_, room| {
            let keep = room.idle_for() <= self.idle;
            if !keep {
                room.end();
            }
            keep
        });
    }

    /// A new class: its code and the teacher's secret.
    pub fn open(&self) -> Result<(String, String), ServiceError> {
        self.sweep();
        let secret = store::new_secret();
        let mut rooms = self.rooms();
        if rooms.len() >= MAX_CLASSES {
            return Err(ServiceError::TooManyClasses { limit: MAX_CLASSES });
        }
        let code = loop {
            let mut rng = rand::rng();
            let code: String = (0..CODE_LENGTH)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            if !rooms.contains_key(&code) {
                break code;
            }
        };
        let (events, _) = watch::channel(ClassEvent::default());
        let room = Room {
            teacher: store::hash_secret(&secret),
            events,
            last_teacher: Mutex::new(Instant::now()),
        };
        rooms.insert(code.clone(), Arc::new(room));
        Ok((code, secret))
    }

    /// The class with this code (codes are read case-blind).
    fn room(&self, code: &str) -> Result<Arc<Room>, ServiceError> {
        self.sweep();
        let code = normalise(code);
        self.rooms()
            .get(&code)
            .cloned()
            .ok_or(ServiceError::NoClass { code })
    }

    /// The room, if `secret` is its teacher's.
    fn teachers_room(&self, code: &str, secret: &str) -> Result<Arc<Room>, ServiceError> {
        let room = self.room(code)?;
        if room.teacher != store::hash_secret(secret) {
            return Err(ServiceError::NotTeacher {
                code: normalise(code),
            });
        }
        room.touch();
        Ok(room)
    }

    /// Shows `view` to everyone following the class.
    pub fn teach(&self, code: &str, secret: &str, view: ClassView) -> Result<(), ServiceError> {
        let room = self.teachers_room(code, secret)?;
        let id = &view.explanation_id;
        if !id.is_empty() && !store::is_valid_id(id) {
            return Err(ServiceError::BadId { id: id.clone() });
        }
        if view.model.len() > MAX_MODEL_ID {
            return Err(ServiceError::ModelIdTooLong {
                limit: MAX_MODEL_ID,
            });
        }
        room.events.send_modify(|e| e.view = Some(view));
        Ok(())
    }

    /// Follows a class. With the teacher's secret the teacher's own page
    /// follows it (for the count of followers), and is not counted.
    pub fn follow(&self, code: &str, teacher_secret: &str) -> Result<Following, ServiceError> {
        let (room, counted) = if teacher_secret.is_empty() {
            (self.room(code)?, true)
        } else {
            (self.teachers_room(code, teacher_secret)?, false)
        };
        if counted {
            // Checked and counted in one step, under the channel's lock.
            let admitted = room.events.send_if_modified(|e| {
                let room_left = (e.followers as usize) < MAX_FOLLOWERS;
                if room_left {
                    e.followers += 1;
                }
                room_left
            });
            if !admitted {
                return Err(ServiceError::ClassFull {
                    limit: MAX_FOLLOWERS,
                });
            }
        }
        let mut events = room.events.subscribe();
        // The current view is the first thing a follower gets.
        events.mark_changed();
        Ok(Following {
            room,
            counted,
            events,
        })
    }

    /// Ends a class for everyone following it.
    pub fn close(&self, code: &str, secret: &str) -> Result<(), ServiceError> {
        let room = self.teachers_room(code, secret)?;
        room.end();
        self.rooms().remove(&normalise(code));
        Ok(())
    }
}

pub type ClassStream = Pin<Box<dyn Stream<Item = Result<ClassEvent, Status>> + Send>>;

/// A follower's stream: the current view, then each change (a follower
/// that reads slowly skips to the newest), until the class ends or the
/// follower leaves.
pub fn stream(mut following: Following) -> ClassStream {
    let (events, stream) = mpsc::channel(2);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = following.events.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let event = following.events.borrow_and_update().clone();
                    let ended = event.ended;
                    if events.send(Ok(event)).await.is_err() || ended {
                        break;
                    }
                }
                _ = events.closed() => break,
            }
        }
    });
    Box::pin(ReceiverStream::new(stream))
}

fn normalise(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str) -> ClassView {
        ClassView {
            explanation_id: id.into(),
            model: "digits".into(),
            ..Default::default()
        }
    }

    #[test]
    fn followers_see_the_latest_view_and_are_counted_until_they_leave() {
        let classes = Classes::new(Duration::from_secs(3600));
        let (code, secret) = classes.open().unwrap();
        assert_eq!(code.len(), CODE_LENGTH);
        assert!(code.bytes().all(|c| ALPHABET.contains(&c)));
        let ids: Vec<String> = (0..3).map(|_| store::new_id()).collect();
        classes.teach(&code, &secret, view(&ids[0])).unwrap();
        let student = classes.follow(&code.to_lowercase(), "").unwrap();
        let teacher = classes.follow(&code, &secret).unwrap();
        assert_eq!(
            teacher.events.borrow().followers,
            1,
            "the teacher is not counted"
        );
        classes.teach(&code, &secret, view(&ids[1])).unwrap();
        classes.teach(&code, &secret, view(&ids[2])).unwrap();
        let latest = student.events.borrow().clone();
        assert_eq!(latest.view.unwrap().explanation_id, ids[2]);
        assert!(matches!(
            classes.teach(&code, &secret, view("not an id")),
            Err(ServiceError::BadId { .. })
        ));
        drop(student);
        assert_eq!(teacher.events.borrow().followers, 0);
    }

    #[test]
    fn only_the_teacher_teaches_or_closes_and_closing_ends_the_class() {
        let classes = Classes::new(Duration::from_secs(3600));
        let (code, secret) = classes.open().unwrap();
        let student = classes.follow(&code, "").unwrap();
        assert!(matches!(
            classes.teach(&code, "guess", view("")),
            Err(ServiceError::NotTeacher { .. })
        ));
        assert!(matches!(
            classes.close(&code, "guess"),
            Err(ServiceError::NotTeacher { .. })
        ));
        classes.close(&code, &secret).unwrap();
        assert!(student.events.borrow().ended);
        assert!(matches!(
            classes.follow(&code, ""),
            Err(ServiceError::NoClass { .. })
        ));
    }

    #[test]
    fn a_class_without_its_teacher_ends_after_the_idle_time() {
        let classes = Classes::new(Duration::from_millis(50));
        let (code, secret) = classes.open().unwrap();
        let student = classes.follow(&code, "").unwrap();
        std::thread::sleep(Duration::from_millis(80));
        classes.sweep();
        assert!(student.events.borrow().ended);
        assert!(matches!(
            classes.teach(&code, &secret, view("")),
            Err(ServiceError::NoClass { .. })
        ));
    }
}
