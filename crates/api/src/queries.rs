//! The client's typed queries: each read-only request paired with the
//! type it is answered with, so a caller cannot read an answer as the
//! wrong one. (Commands that change state answer with small records; ask
//! them with [`Client::ask`].)

use crate::answers::{
    CpuFreq, History, PolicyDescription, PolicyList, Status, TopFrame, VmInfo, VmList,
};
use crate::{Client, ClientError, CtlRequest, CtlResponse};

impl Client {
    /// `status`: the daemon's health and counters.
    pub fn status(&mut self) -> Result<CtlResponse<Status>, ClientError> {
        self.ask(&CtlRequest::Status)
    }

    /// `top`: one frame of the live view.
    pub fn top(&mut self) -> Result<CtlResponse<TopFrame>, ClientError> {
        self.ask(&CtlRequest::Top)
    }

    /// `list-vms`: every known VM.
    pub fn list_vms(&mut self) -> Result<CtlResponse<VmList>, ClientError> {
        self.ask(&CtlRequest::ListVms)
    }

    /// `show-vm`: one VM in detail.
    pub fn show_vm(&mut self, vm: &str) -> Result<CtlResponse<VmInfo>, ClientError> {
        self.ask(&CtlRequest::ShowVm { vm: vm.to_owned() })
    }

    /// `show-cpu-freq`: host CPUs' frequency (`cpus` empty: all).
    pub fn show_cpu_freq(
        &mut self,
        cpus: &[u32],
    ) -> Result<CtlResponse<Vec<CpuFreq>>, ClientError> {
        self.ask(&CtlRequest::ShowCpuFreq {
            cpus: cpus.to_vec(),
        })
    }

    /// `policy list`: every policy in force.
    pub fn policy_list(&mut self) -> Result<CtlResponse<PolicyList>, ClientError> {
        self.ask(&CtlRequest::PolicyList)
    }

    /// `policy show`: one VM's policy.
    pub fn policy_show(&mut self, vm: &str) -> Result<CtlResponse<PolicyDescription>, ClientError> {
        self.ask(&CtlRequest::PolicyShow { vm: vm.to_owned() })
    }

    /// `history`: decisions, newest first, of `vm` (or all), since unix
    /// second `since`, at most `limit` (100 by default).
    pub fn history(
        &mut self,
        vm: Option<&str>,
        since: Option<i64>,
        limit: Option<u32>,
    ) -> Result<CtlResponse<History>, ClientError> {
        self.ask(&CtlRequest::History {
            vm: vm.map(str::to_owned),
            since,
            limit,
        })
    }

    /// `traffic-record`: one page of the record of sampled packet rates
    /// (`request` is a [`CtlRequest::TrafficRecord`]).
    pub fn traffic_record(
        &mut self,
        request: &CtlRequest,
    ) -> Result<CtlResponse<crate::rate_record::RatePage>, ClientError> {
        self.ask(request)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::ErrorKind;

    /// A one-connection daemon that answers each request line with the
    /// next of `answers`, and hands back the request lines it read.
    fn daemon(
        answers: &'static [&'static str],
    ) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("ctl.sock")).unwrap();
        let served = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut seen = Vec::new();
            for answer in answers {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                seen.push(line.trim_end().to_owned());
                writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
            }
            seen
        });
        (dir, served)
    }

    #[test]
    fn queries_send_their_request_and_read_their_answer_type() {
        let (dir, served) = daemon(&[
            r#"{"ok":{"added":"vm1"}}"#,
            r#"{"ok":[]}"#,
            r#"{"error":{"kind":"not-found","message":"no VM named vm9"}}"#,
        ]);
        let mut client = Client::connect(&dir.path().join("ctl.sock")).unwrap();
        // An answer of another type is not understood, naming the request.
        let err = client.status().unwrap_err();
        assert!(
            matches!(&err, ClientError::BadAnswer(m) if m.contains("Status") && m.contains("missing field")),
            "{err}"
        );
        let history = client.history(Some("vm1"), Some(5), Some(2)).unwrap();
        assert_eq!(history, CtlResponse::Ok(vec![]));
        let refused = client.show_vm("vm9").unwrap();
        assert!(
            matches!(&refused, CtlResponse::Error(e) if e.kind == ErrorKind::NotFound),
            "{refused:?}"
        );
        assert_eq!(
            served.join().unwrap(),
            [
                r#"{"cmd":"status"}"#,
                r#"{"cmd":"history","vm":"vm1","since":5,"limit":2}"#,
                r#"{"cmd":"show-vm","vm":"vm9"}"#,
            ]
        );
    }
}
