//! Classrooms: a teacher opens one (a short code), and everyone who follows it
//! sees what the teacher shows (the page's settings and the explanation on
//! screen, which they then watch live through its share id). A class lives
//! in the worker's memory: it survives page reloads on either side, and ends
//! when the teacher closes it or after `idle` without the teacher.
//!
//! Each class holds only its latest view (a `watch` channel), so a follower
//! who falls behind skips to the newest view and memory stays bounded.
//!
//! Strangers must not find a class by guessing: the link and QR code carry
//! a long random token, only the typed six-letter code is guessable, and a
//! client whose look-ups keep missing is refused for a while. A client may
//! open only a few classes at once, so nobody takes every place.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lens_proto::v1::{
    ClassEvent, ClassOpened, ClassView, CloseClassRequest, CloseClassResponse, FollowClassRequest,
    TeachRequest, TeachResponse,
};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Response, Status};

use super::client::Client;
use super::limits::Limit;
use super::metrics::{metrics, Counted};
use super::misses;
use super::status::ServiceError;
use lens_engine::engine::EngineError;
use lens_store as store;

/// Letters and digits that cannot be mistaken for one another on a
/// projector (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const CODE_LENGTH: usize = 6;
/// Followers of one class at most (a large lecture hall).
pub const MAX_FOLLOWERS: usize = 500;
/// Classrooms open at once, at most.
pub const MAX_CLASSES: usize = 1000;
/// How long a model id in a class's view may be (it is only echoed).
const MAX_MODEL_ID: usize = 200;
/// The longest shown-class text ("999-998").
const MAX_SEE: usize = 16;
/// Classrooms one client (a browser, else an address) may have open at once.
pub const CLASSROOMS_PER_CLIENT: usize = 5;

pub struct Classrooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Recent look-ups that found nothing, per client (see `misses`).
    misses: Mutex<HashMap<Option<IpAddr>, Vec<u64>>>,
    idle: Duration,
}

struct Room {
    /// What the class link carries instead of the code.
    token: String,
    /// Who opened it (for the classes-per-client limit).
    opener: Option<String>,
    /// Browsers that have followed it: a code they type again is proven
    /// right, not a guess, so no limit on missed codes refuses it.
    joined: Mutex<HashSet<String>>,
    teacher: [u8; 32],
    events: watch::Sender<ClassEvent>,
    last_teacher: Mutex<Instant>,
    /// Followers connected to other gateways (counted in `events` too).
    elsewhere: Mutex<u32>,
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

    fn has_joined(&self, client: &Client) -> bool {
        let joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        client.browser.as_ref().is_some_and(|b| joined.contains(b))
    }

    fn remember(&self, client: &Client) {
        let mut joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded like the followers (a browser may rejoin with a new id).
        if let Some(browser) = client
            .browser
            .as_ref()
            .filter(|_| joined.len() < 2 * MAX_FOLLOWERS)
        {
            joined.insert(browser.clone());
        }
    }
}

/// A follower's place in a class; leaving (dropping it) updates the count
/// everyone sees.
pub struct Following {
    room: Arc<Room>,
    /// A student (not the teacher's own page), counted while following.
    counted: Option<Counted>,
    pub events: watch::Receiver<ClassEvent>,
}

impl Drop for Following {
    fn drop(&mut self) {
        if self.counted.is_some() {
            self.room.events.send_modify(|e| e.followers -= 1);
        }
    }
}

impl Classrooms {
    pub fn new(idle: Duration) -> Self {
        Classrooms {
            rooms: Mutex::default(),
            misses: Mutex::default(),
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
                metrics().classes_open.dec();
            }
            keep
        });
    }

    /// A new class, opened by `client`: its code, the teacher's secret and
    /// the link token.
    pub fn open(&self, client: &Client) -> Result<Opened, ServiceError> {
        self.sweep();
        let secret = store::new_secret();
        let mut rooms = self.rooms();
        if rooms.len() >= MAX_CLASSES {
            return Err(ServiceError::TooManyClassrooms { limit: MAX_CLASSES });
        }
        // The open rooms are where this process counts them.
        let opener = client.own_key("o");
        if let Some(limit) = Limit::classrooms_opened(CLASSROOMS_PER_CLIENT, client) {
            if rooms.values().filter(|r| r.opener == opener).count() >= limit.most() {
                return Err(limit.refusal());
            }
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
        let token = store::new_id();
        let (events, _) = watch::channel(ClassEvent {
            code: code.clone(),
            ..Default::default()
        });
        let room = Room {
            token: token.clone(),
            opener,
            joined: Mutex::default(),
            teacher: store::hash_secret(&secret),
            events,
            last_teacher: Mutex::new(Instant::now()),
            elsewhere: Mutex::new(0),
        };
        rooms.insert(code.clone(), Arc::new(room));
        metrics().classes_open.inc();
        Ok(Opened {
            code,
            teacher_secret: secret,
            link_token: token,
        })
    }

    /// The class with this code (read case-blind) or link token. An
    /// address whose look-ups found nothing too often is refused a while,
    /// unless the call proves it belongs to the class: a token is never
    /// guessed, and a browser that joined the class before knows its code.
    fn room(&self, code: &str, client: &Client) -> Result<Arc<Room>, ServiceError> {
        self.sweep();
        let code = normalise(code);
        let is_token = code.len() > CODE_LENGTH;
        if !is_token {
            let rejoining = self
                .rooms()
                .get(&code)
                .filter(|r| r.has_joined(client))
                .cloned();
            if let Some(room) = rejoining {
                return Ok(room);
            }
            self.check_misses(client.address)?;
        }
        let found = {
            let rooms = self.rooms();
            if is_token {
                let token = code.to_ascii_lowercase();
                rooms.values().find(|r| r.token == token).cloned()
            } else {
                rooms.get(&code).cloned()
            }
        };
        found.ok_or_else(|| {
            self.missed(client.address);
            ServiceError::NoClassroom { code }
        })
    }

    /// Refuses a client that missed too often in the last period.
    fn check_misses(&self, client: Option<IpAddr>) -> Result<(), ServiceError> {
        let misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        misses
            .get(&client)
            .map_or(Ok(()), |recent| misses::check(recent, misses::now_ms()))
    }

    fn missed(&self, client: Option<IpAddr>) {
        let mut misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        let now = misses::now_ms();
        // Forget clients whose misses are all old, so the table stays small.
        misses.retain(|_, recent| misses::any_recent(recent, now));
        misses::record(misses.entry(client).or_default(), now);
    }

    /// The room, if `secret` is its teacher's. The teacher's secret proves
    /// the call belongs to the class, so no limit on missed codes refuses
    /// it (a school's wrong codes never lock its teacher out); any other
    /// secret is a look-up like a student's.
    fn teachers_room(
        &self,
        code: &str,
        secret: &str,
        client: &Client,
    ) -> Result<Arc<Room>, ServiceError> {
        self.sweep();
        let proven = self
            .rooms()
            .get(&normalise(code))
            .filter(|room| room.teacher == store::hash_secret(secret))
            .cloned();
        if let Some(room) = proven {
            room.touch();
            return Ok(room);
        }
        let room = self.room(code, client)?;
        if room.teacher != store::hash_secret(secret) {
            return Err(ServiceError::NotTeacher {
                code: normalise(code),
            });
        }
        room.touch();
        Ok(room)
    }

    /// Shows `view` to everyone following the class.
    pub fn teach(
        &self,
        code: &str,
        secret: &str,
        view: ClassView,
        client: &Client,
    ) -> Result<(), ServiceError> {
        let room = self.teachers_room(code, secret, client)?;
        let id = &view.explanation_id;
        if !id.is_empty() && !store::is_valid_id(id) {
            return Err(ServiceError::BadId { id: id.clone() });
        }
        if view.model.len() > MAX_MODEL_ID {
            return Err(ServiceError::ModelIdTooLong {
                limit: MAX_MODEL_ID,
            });
        }
        let see_ok =
            view.see.len() <= MAX_SEE && view.see.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if !see_ok {
            return Err(ServiceError::BadShownClass { see: view.see });
        }
        if let Some(budget) = view.budget.filter(|b| !(*b > 0.0 && *b <= 1.0)) {
            return Err(EngineError::BadBudget { budget }.into());
        }
        room.events.send_modify(|e| e.view = Some(view));
        Ok(())
    }

    /// Follows a class. With the teacher's secret the teacher's own page
    /// follows it (for the count of followers), and is not counted.
    pub fn follow(
        &self,
        code: &str,
        teacher_secret: &str,
        client: &Client,
    ) -> Result<Following, ServiceError> {
        let (room, counted) = if teacher_secret.is_empty() {
            (self.room(code, client)?, true)
        } else {
            (self.teachers_room(code, teacher_secret, client)?, false)
        };
        if counted {
            room.remember(client);
            // Checked and counted in one step, under the channel's lock.
            let admitted = room.events.send_if_modified(|e| {
                let room_left = (e.followers as usize) < MAX_FOLLOWERS;
                if room_left {
                    e.followers += 1;
                }
                room_left
            });
            if !admitted {
                return Err(ServiceError::ClassroomFull {
                    limit: MAX_FOLLOWERS,
                });
            }
        }
        let mut events = room.events.subscribe();
        // The current view is the first thing a follower gets.
        events.mark_changed();
        Ok(Following {
            room,
            counted: counted.then(|| Counted::new(&metrics().class_followers)),
            events,
        })
    }

    /// Ends a class for everyone following it.
    pub fn close(&self, code: &str, secret: &str, client: &Client) -> Result<(), ServiceError> {
        let room = self.teachers_room(code, secret, client)?;
        room.end();
        let mut rooms = self.rooms();
        let before = rooms.len();
        rooms.retain(|_, r| !Arc::ptr_eq(r, &room));
        metrics().classes_open.sub((before - rooms.len()) as i64);
        Ok(())
    }
}

/// A class as the cluster keeps it (see `cluster::classes`): its link
/// token, its teacher's secret hash and what it shows.
pub struct ClassroomCopy {
    pub token: String,
    pub teacher: [u8; 32],
    pub view: Option<ClassView>,
}

/// What gateways need to share classes: a local copy of a class opened
/// elsewhere, and the changes other gateways make.
impl Classrooms {
    /// The code of the class here with this code or link token (no miss
    /// is counted: the cluster may still know it).
    pub fn code_here(&self, code_or_token: &str) -> Option<String> {
        let asked = normalise(code_or_token);
        let rooms = self.rooms();
        if asked.len() > CODE_LENGTH {
            let token = asked.to_ascii_lowercase();
            rooms
                .iter()
                .find(|(_, r)| r.token == token)
                .map(|(code, _)| code.clone())
        } else {
            rooms.contains_key(&asked).then_some(asked)
        }
    }

    /// The class as the cluster keeps it.
    pub fn shared(&self, code: &str) -> Option<ClassroomCopy> {
        let room = self.rooms().get(code).cloned()?;
        let view = room.events.borrow().view.clone();
        Some(ClassroomCopy {
            token: room.token.clone(),
            teacher: room.teacher,
            view,
        })
    }

    /// A local copy of a class another gateway opened (nothing changes if
    /// there is one already).
    pub fn adopt(&self, code: &str, class: ClassroomCopy) -> Result<(), ServiceError> {
        let mut rooms = self.rooms();
        if rooms.contains_key(code) {
            return Ok(());
        }
        if rooms.len() >= MAX_CLASSES {
            return Err(ServiceError::TooManyClassrooms { limit: MAX_CLASSES });
        }
        let (events, _) = watch::channel(ClassEvent {
            code: code.to_string(),
            view: class.view,
            ..Default::default()
        });
        let room = Room {
            token: class.token,
            opener: None,
            joined: Mutex::default(),
            teacher: class.teacher,
            events,
            last_teacher: Mutex::new(Instant::now()),
            elsewhere: Mutex::new(0),
        };
        rooms.insert(code.to_string(), Arc::new(room));
        metrics().classes_open.inc();
        Ok(())
    }

    /// Notes that `client`'s browser followed class `code` (through another
    /// gateway): its typed code is then proven here too.
    pub fn remember(&self, code: &str, client: &Client) {
        if let Some(room) = self.rooms().get(code) {
            room.remember(client);
        }
    }

    /// A change another gateway made: the view shown, or the class's end.
    pub fn apply(&self, code: &str, view: Option<ClassView>, ended: bool) {
        let Some(room) = self.rooms().get(code).cloned() else {
            return;
        };
        if ended {
            room.end();
            let mut rooms = self.rooms();
            let before = rooms.len();
            rooms.retain(|_, r| !Arc::ptr_eq(r, &room));
            metrics().classes_open.sub((before - rooms.len()) as i64);
            return;
        }
        room.touch();
        room.events.send_if_modified(|e| {
            let changed = e.view != view;
            e.view = view;
            changed
        });
    }

    /// Followers of the class connected here; `None` once it is gone here.
    pub fn followers_here(&self, code: &str) -> Option<u32> {
        let room = self.rooms().get(code).cloned()?;
        let elsewhere = *room.elsewhere.lock().unwrap_or_else(|e| e.into_inner());
        let all = room.events.borrow().followers;
        Some(all.saturating_sub(elsewhere))
    }

    /// How many follow the class through other gateways.
    pub fn set_followers_elsewhere(&self, code: &str, followers: u32) {
        let Some(room) = self.rooms().get(code).cloned() else {
            return;
        };
        let mut elsewhere = room.elsewhere.lock().unwrap_or_else(|e| e.into_inner());
        let before = *elsewhere;
        *elsewhere = followers;
        room.events.send_if_modified(|e| {
            e.followers = e.followers - before + followers;
            before != followers
        });
    }
}

/// What opening a class gives the teacher.
pub struct Opened {
    pub code: String,
    pub teacher_secret: String,
    pub link_token: String,
}

pub type ClassroomStream = Pin<Box<dyn Stream<Item = Result<ClassEvent, Status>> + Send>>;

/// A follower's stream: the current view, then each change (a follower
/// that reads slowly skips to the newest), until the class ends or the
/// follower leaves.
pub fn stream(mut following: Following) -> ClassroomStream {
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

// The calls of the wire over one process's classrooms (a gateway shares
// them with the other gateways first, then makes the same calls).

pub fn open_class(
    classrooms: &Classrooms,
    client: &Client,
) -> Result<Response<ClassOpened>, Status> {
    let opened = classrooms.open(client)?;
    Ok(Response::new(ClassOpened {
        code: opened.code,
        teacher_secret: opened.teacher_secret,
        link_token: opened.link_token,
    }))
}

pub fn teach(
    classrooms: &Classrooms,
    request: TeachRequest,
    client: &Client,
) -> Result<Response<TeachResponse>, Status> {
    let TeachRequest {
        code,
        teacher_secret,
        view,
    } = request;
    classrooms.teach(&code, &teacher_secret, view.unwrap_or_default(), client)?;
    Ok(Response::new(TeachResponse {}))
}

pub fn follow_class(
    classrooms: &Classrooms,
    request: FollowClassRequest,
    client: &Client,
) -> Result<Response<ClassroomStream>, Status> {
    let FollowClassRequest {
        code,
        teacher_secret,
    } = request;
    let following = classrooms.follow(&code, &teacher_secret, client)?;
    Ok(Response::new(stream(following)))
}

pub fn close_class(
    classrooms: &Classrooms,
    request: CloseClassRequest,
    client: &Client,
) -> Result<Response<CloseClassResponse>, Status> {
    let CloseClassRequest {
        code,
        teacher_secret,
    } = request;
    classrooms.close(&code, &teacher_secret, client)?;
    Ok(Response::new(CloseClassResponse {}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::misses::{LOOKUP_PERIOD, MISSES_PER_PERIOD};

    fn nobody() -> Client {
        Client::default()
    }

    fn view(id: &str) -> ClassView {
        ClassView {
            explanation_id: id.into(),
            model: "digits".into(),
            ..Default::default()
        }
    }

    #[test]
    fn followers_see_the_latest_view_and_are_counted_until_they_leave() {
        let classes = Classrooms::new(Duration::from_secs(3600));
        let Opened {
            code,
            teacher_secret: secret,
            ..
        } = classes.open(&nobody()).unwrap();
        assert_eq!(code.len(), CODE_LENGTH);
        assert!(code.bytes().all(|c| ALPHABET.contains(&c)));
        let ids: Vec<String> = (0..3).map(|_| store::new_id()).collect();
        classes
            .teach(&code, &secret, view(&ids[0]), &nobody())
            .unwrap();
        let student = classes.follow(&code.to_lowercase(), "", &nobody()).unwrap();
        let teacher = classes.follow(&code, &secret, &nobody()).unwrap();
        assert_eq!(
            teacher.events.borrow().followers,
            1,
            "the teacher is not counted"
        );
        classes
            .teach(&code, &secret, view(&ids[1]), &nobody())
            .unwrap();
        classes
            .teach(&code, &secret, view(&ids[2]), &nobody())
            .unwrap();
        let latest = student.events.borrow().clone();
        assert_eq!(latest.view.unwrap().explanation_id, ids[2]);
        assert!(matches!(
            classes.teach(&code, &secret, view("not an id"), &nobody()),
            Err(ServiceError::BadId { .. })
        ));
        drop(student);
        assert_eq!(teacher.events.borrow().followers, 0);
    }

    #[test]
    fn only_the_teacher_teaches_or_closes_and_closing_ends_the_class() {
        let classes = Classrooms::new(Duration::from_secs(3600));
        let Opened {
            code,
            teacher_secret: secret,
            ..
        } = classes.open(&nobody()).unwrap();
        let student = classes.follow(&code, "", &nobody()).unwrap();
        assert!(matches!(
            classes.teach(&code, "guess", view(""), &nobody()),
            Err(ServiceError::NotTeacher { .. })
        ));
        assert!(matches!(
            classes.close(&code, "guess", &nobody()),
            Err(ServiceError::NotTeacher { .. })
        ));
        classes.close(&code, &secret, &nobody()).unwrap();
        assert!(student.events.borrow().ended);
        assert!(matches!(
            classes.follow(&code, "", &nobody()),
            Err(ServiceError::NoClassroom { .. })
        ));
    }

    #[test]
    fn a_class_without_its_teacher_ends_after_the_idle_time() {
        let classes = Classrooms::new(Duration::from_millis(50));
        let Opened {
            code,
            teacher_secret: secret,
            ..
        } = classes.open(&nobody()).unwrap();
        let student = classes.follow(&code, "", &nobody()).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        classes.sweep();
        assert!(student.events.borrow().ended);
        assert!(matches!(
            classes.teach(&code, &secret, view(""), &nobody()),
            Err(ServiceError::NoClassroom { .. })
        ));
    }

    fn address(last: u8) -> Client {
        Client::at(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn the_link_token_finds_the_class_and_the_code_is_learnt_from_it() {
        let classes = Classrooms::new(Duration::from_secs(3600));
        let opened = classes.open(&address(1)).unwrap();
        assert_eq!(opened.link_token.len(), 32, "128 random bits in hex");
        assert_ne!(opened.link_token, opened.code);
        let student = classes.follow(&opened.link_token, "", &address(2)).unwrap();
        assert_eq!(student.events.borrow().code, opened.code);
        classes
            .close(&opened.link_token, &opened.teacher_secret, &address(1))
            .unwrap();
        assert!(student.events.borrow().ended);
    }

    #[test]
    fn a_client_that_keeps_missing_is_refused_a_while_but_links_still_work() {
        let classes = Classrooms::new(Duration::from_secs(3600));
        let opened = classes.open(&address(1)).unwrap();
        let guesser = address(9);
        for _ in 0..MISSES_PER_PERIOD {
            assert!(matches!(
                classes.follow("ZZZZZZ", "", &guesser),
                Err(ServiceError::NoClassroom { .. })
            ));
        }
        match classes.follow(&opened.code, "", &guesser) {
            Err(ServiceError::TooManyMisses { wait_seconds }) => {
                assert!((1..=LOOKUP_PERIOD.as_secs()).contains(&wait_seconds))
            }
            other => panic!("a right code after too many misses: {:?}", other.err()),
        }
        // The refused client may still follow the link; others the code.
        classes.follow(&opened.link_token, "", &guesser).unwrap();
        classes.follow(&opened.code, "", &address(3)).unwrap();
        // The teacher behind the same address still teaches and closes:
        // the secret proves the call belongs to the class. A wrong secret
        // is a look-up like any other, and waits.
        assert!(matches!(
            classes.teach(&opened.code, "a guess", view(""), &guesser),
            Err(ServiceError::TooManyMisses { .. })
        ));
        classes
            .teach(&opened.code, &opened.teacher_secret, view(""), &guesser)
            .unwrap();
        classes
            .close(&opened.code, &opened.teacher_secret, &guesser)
            .unwrap();
        let message = Status::from(ServiceError::TooManyMisses { wait_seconds: 42 });
        assert_eq!(message.code(), tonic::Code::ResourceExhausted);
        assert!(message.message().contains("try again in 42 s"));
    }

    #[test]
    fn a_client_opens_only_a_few_classes_at_once() {
        let classes = Classrooms::new(Duration::from_secs(3600));
        let mine: Vec<Opened> = (0..CLASSROOMS_PER_CLIENT)
            .map(|_| classes.open(&address(1)).unwrap())
            .collect();
        assert!(matches!(
            classes.open(&address(1)),
            Err(ServiceError::TooManyClassroomsOpened { .. })
        ));
        classes.open(&address(2)).expect("another client opens one");
        classes
            .close(&mine[0].code, &mine[0].teacher_secret, &address(1))
            .unwrap();
        classes
            .open(&address(1))
            .expect("a place after closing one");
    }

    #[test]
    fn a_browser_that_joined_before_types_the_right_code_through_a_locked_out_address() {
        let classes = Classrooms::new(Duration::from_secs(3600));
        let opened = classes.open(&address(1)).unwrap();
        let school: IpAddr = IpAddr::from([10, 0, 0, 7]);
        let returning = Client::browser_at(school, "returning-browser");
        classes.follow(&opened.code, "", &returning).unwrap();
        let typo = Client::browser_at(school, "typing-browser");
        for _ in 0..MISSES_PER_PERIOD {
            let _ = classes.follow("ZZZZZZ", "", &typo);
        }
        // The address is locked out for codes: a new browser is refused...
        let newcomer = Client::browser_at(school, "newcomer-browser");
        assert!(matches!(
            classes.follow(&opened.code, "", &newcomer),
            Err(ServiceError::TooManyMisses { .. })
        ));
        // ...one that followed before is not, and a wrong code from it is
        // still a miss.
        classes.follow(&opened.code, "", &returning).unwrap();
        assert!(matches!(
            classes.follow("YYYYYY", "", &returning),
            Err(ServiceError::TooManyMisses { .. })
        ));
    }
}
