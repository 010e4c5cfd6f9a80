//! The edge's side of the control protocol: await `Hello`, have it judged, answer `Welcome`
//! or `Refused`, then receive whatever the connector sends later.

use super::{
    peer_understands, we_announced, Control, ControlError, Hello, Limits, Received, Refused,
    Welcome,
};
use crate::frame::{FrameBuffer, FrameError, PROTOCOL_VERSION};

/// What [`EdgeControl`] asks of its shell, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeOutput {
    /// Write this message on the control stream.
    Send(Control),
    /// A connector introduced itself (in a protocol version this edge speaks): judge it, then
    /// [`EdgeControl::accept`] or [`EdgeControl::refuse`].
    Hello(Hello),
    /// The connector is refused (the `Refused` to send comes just before): finish the control
    /// stream and close the tunnel. The reason is for the log.
    Refused(String),
    /// A message of an optional type we announced, for the edge to act on.
    Message(Control),
    /// A message of a type this build does not know (a newer connector's), ignored: log it.
    Ignored(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing received yet.
    AwaitingHello,
    /// `Hello` received and handed out; awaiting the verdict.
    Judging,
    /// `Welcome` sent: the tunnel is up.
    Established,
    /// Refused, or broken by an error: no more input is taken.
    Closed,
}

impl State {
    fn when(self) -> &'static str {
        match self {
            State::AwaitingHello => "before Hello",
            State::Judging => "before Welcome",
            State::Established => "after Welcome",
            State::Closed => "after the conversation ended",
        }
    }
}

/// The edge's control protocol, sans I/O: feed it what the control stream delivers
/// ([`handle_bytes`](Self::handle_bytes), and [`handle_end`](Self::handle_end) when it ends),
/// judge the [`EdgeOutput::Hello`] it hands out, and do what the outputs say.
#[derive(Debug)]
pub struct EdgeControl {
    state: State,
    /// What this edge announces in its `Welcome`, and the optional message types it accepts.
    capabilities: Vec<String>,
    /// What the connector announced in its `Hello`.
    peer_capabilities: Vec<String>,
    frames: FrameBuffer,
}

impl EdgeControl {
    /// A machine awaiting a `Hello`; it will announce `capabilities` (normally
    /// [`super::capabilities()`]).
    pub fn new(capabilities: Vec<String>) -> Self {
        EdgeControl {
            state: State::AwaitingHello,
            capabilities,
            peer_capabilities: Vec::new(),
            frames: FrameBuffer::default(),
        }
    }

    /// Whether the connector has been welcomed.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// The optional message types the connector announced.
    pub fn peer_capabilities(&self) -> &[String] {
        &self.peer_capabilities
    }

    /// Takes bytes as they arrived on the control stream (any split), and returns what they
    /// call for.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Vec<EdgeOutput>, ControlError> {
        if self.state == State::Closed {
            return Err(ControlError::Closed);
        }
        self.frames.push(bytes);
        let mut out = Vec::new();
        loop {
            let frame = match self.frames.next_frame::<Received>() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.fail(e.into())),
            };
            out.extend(self.handle(frame)?);
            if self.state == State::Closed {
                // Refused: nothing the connector sends after its first message counts.
                return Ok(out);
            }
        }
    }

    /// Takes one decoded message.
    pub fn handle(&mut self, msg: Received) -> Result<Vec<EdgeOutput>, ControlError> {
        let msg = match msg {
            Received::Unknown(kind) if self.state != State::Closed => {
                return Ok(vec![EdgeOutput::Ignored(kind)]);
            }
            Received::Unknown(_) => return Err(ControlError::Closed),
            Received::Known(msg) => msg,
        };
        match (self.state, msg) {
            (State::Closed, _) => Err(ControlError::Closed),
            (State::AwaitingHello, Control::Hello(hello)) if hello.protocol != PROTOCOL_VERSION => {
                Ok(self.refused(format!(
                    "tunnel protocol {} is not supported; this edge speaks {PROTOCOL_VERSION}",
                    hello.protocol
                )))
            }
            (State::AwaitingHello, Control::Hello(hello)) => {
                self.state = State::Judging;
                self.peer_capabilities = hello.capabilities.clone();
                Ok(vec![EdgeOutput::Hello(hello)])
            }
            (State::AwaitingHello, _) => {
                Ok(self.refused("expected Hello as the first control frame".to_owned()))
            }
            (State::Established, msg) if !msg.is_base() => {
                if we_announced(&msg, &self.capabilities) {
                    Ok(vec![EdgeOutput::Message(msg)])
                } else {
                    Err(self.fail(ControlError::NotAnnounced(msg.kind())))
                }
            }
            (state, msg) => Err(self.fail(ControlError::Unexpected {
                kind: msg.kind(),
                when: state.when(),
            })),
        }
    }

    /// The connector ended the control stream (FIN).
    pub fn handle_end(&mut self) -> Result<Vec<EdgeOutput>, ControlError> {
        match self.state {
            State::Closed => Ok(Vec::new()),
            _ if !self.frames.is_empty() => Err(self.fail(FrameError::Truncated.into())),
            State::AwaitingHello => Err(self.fail(ControlError::Ended("before Hello"))),
            // The connector has nothing more to say; the edge can still answer, and the tunnel
            // lives on.
            State::Judging | State::Established => Ok(Vec::new()),
        }
    }

    /// The verdict on the [`EdgeOutput::Hello`]: welcome the connector on these terms.
    pub fn accept(
        &mut self,
        edge: String,
        limits: Limits,
        heartbeat_ms: u64,
    ) -> Result<Vec<EdgeOutput>, ControlError> {
        if self.state != State::Judging {
            return Err(ControlError::State {
                action: "send Welcome",
                when: self.state.when(),
            });
        }
        self.state = State::Established;
        Ok(vec![EdgeOutput::Send(Control::Welcome(Welcome {
            edge,
            limits,
            heartbeat_ms,
            capabilities: self.capabilities.clone(),
        }))])
    }

    /// The verdict on the [`EdgeOutput::Hello`]: refuse the connector, for `reason`.
    pub fn refuse(&mut self, reason: String) -> Result<Vec<EdgeOutput>, ControlError> {
        if self.state != State::Judging {
            return Err(ControlError::State {
                action: "send Refused",
                when: self.state.when(),
            });
        }
        Ok(self.refused(reason))
    }

    /// Sends a message of an optional type, if the connector announced it.
    pub fn send(&mut self, msg: Control) -> Result<Vec<EdgeOutput>, ControlError> {
        if self.state != State::Established || msg.is_base() {
            return Err(ControlError::State {
                action: "send this message",
                when: self.state.when(),
            });
        }
        if !peer_understands(&msg, &self.peer_capabilities) {
            return Err(ControlError::PeerDidNotAnnounce(msg.kind()));
        }
        Ok(vec![EdgeOutput::Send(msg)])
    }

    fn refused(&mut self, reason: String) -> Vec<EdgeOutput> {
        self.state = State::Closed;
        vec![
            EdgeOutput::Send(Control::Refused(Refused {
                reason: reason.clone(),
            })),
            EdgeOutput::Refused(reason),
        ]
    }

    fn fail(&mut self, e: ControlError) -> ControlError {
        self.state = State::Closed;
        e
    }
}

#[cfg(test)]
mod tests;
