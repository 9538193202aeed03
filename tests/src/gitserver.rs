//! Real git servers on loopback, for tests of fetching over https and ssh.
//!
//! - [`HttpsGitServer`]: nginx in front of `git http-backend` (through fcgiwrap), with a
//!   certificate from a CA made for the server, and HTTP basic auth with a token.
//! - [`SshGitServer`]: `sshd` with its own host key, config and authorized key.
//!
//! Each runs unprivileged-style from a temp dir of its own (config, keys, pid and log
//! files), on a free loopback port, and is killed when dropped. A start waits on the
//! port with a deadline. They need `nginx`, `fcgiwrap`, `openssl`, `sshd` and
//! `ssh-keygen` (`scripts/setup.sh` installs them). This file uses only std and tempfile,
//! so the node's own unit tests include it too.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The user name the https server expects with its token.
pub const HTTPS_USERNAME: &str = "x-access-token";

/// nginx + fcgiwrap + `git http-backend`, over TLS, requiring a token.
pub struct HttpsGitServer {
    dir: TempDir,
    port: u16,
    token: String,
    children: Vec<Child>,
}

impl HttpsGitServer {
    /// Starts the server with a fresh CA, certificate (for `127.0.0.1`) and token.
    pub fn start() -> HttpsGitServer {
        let dir = tempfile::tempdir().expect("temp dir for the https git server");
        let root = dir.path().to_owned();
        for sub in ["repos", "tmp"] {
            fs::create_dir_all(root.join(sub)).expect("server dirs");
        }
        make_certificates(&root);
        let token = format!("token-{}", random_hex());
        let mut passwd = Command::new("openssl");
        passwd.args(["passwd", "-apr1", "-stdin"]);
        let hash = run_with_input(&mut passwd, token.as_bytes());
        fs::write(root.join("htpasswd"), format!("{HTTPS_USERNAME}:{}\n", hash.trim()))
            .expect("htpasswd");
        let port = free_port();
        let mut server = HttpsGitServer { dir, port, token, children: Vec::new() };

        let socket = root.join("fcgiwrap.sock");
        let fcgiwrap = Command::new(find_program("fcgiwrap"))
            .arg("-s")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log_file(&root, "fcgiwrap.log"))
            .stderr(log_file(&root, "fcgiwrap.log"))
            .spawn()
            .expect("start fcgiwrap (scripts/setup.sh installs it)");
        server.children.push(fcgiwrap);
        wait_for(&mut server.children, || socket.exists(), &root.join("fcgiwrap.log"));

        let backend = git_exec_path().join("git-http-backend");
        fs::write(root.join("nginx.conf"), nginx_config(&root, port, &socket, &backend))
            .expect("nginx.conf");
        let nginx = Command::new(find_program("nginx"))
            .arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-e")
            .arg(root.join("error.log"))
            .stdin(Stdio::null())
            .stdout(log_file(&root, "nginx.log"))
            .stderr(log_file(&root, "nginx.log"))
            .spawn()
            .expect("start nginx (scripts/setup.sh installs it)");
        server.children.push(nginx);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(
            &mut server.children,
            || TcpStream::connect(addr).is_ok(),
            &root.join("error.log"),
        );
        server
    }

    /// Serves the bare repository `bare` as `name`; returns its url.
    /// `name` may have directories (`acme/app.git`), as a forge's `owner/repo` does.
    pub fn serve(&self, name: &str, bare: &Path) -> String {
        let link = self.dir.path().join("repos").join(name);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).expect("directories of the served name");
        }
        std::os::unix::fs::symlink(bare, link).expect("link the repository into the server");
        self.url(name)
    }

    /// The url of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/{name}", self.port)
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The token the server accepts with [`HTTPS_USERNAME`].
    pub fn token(&self) -> &str {
        &self.token
    }

    /// nginx's error log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for HttpsGitServer {
    fn drop(&mut self) {
        kill_all(&mut self.children);
    }
}

/// `sshd` on a loopback port, accepting one client key for `root`.
pub struct SshGitServer {
    dir: TempDir,
    port: u16,
    children: Vec<Child>,
}

impl SshGitServer {
    /// Starts sshd with a fresh host key and a fresh authorized client key.
    pub fn start() -> SshGitServer {
        let dir = tempfile::tempdir().expect("temp dir for the ssh git server");
        let root = dir.path().to_owned();
        fs::create_dir_all(root.join("repos")).expect("repos dir");
        generate_key(&root.join("host_key"));
        generate_key(&root.join("client_key"));
        fs::copy(root.join("client_key.pub"), root.join("authorized_keys"))
            .expect("authorized_keys");
        // sshd refuses to start without its privilege separation directory.
        let _ = fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = [
            format!("Port {port}"),
            "ListenAddress 127.0.0.1".to_owned(),
            format!("HostKey {}", root.join("host_key").display()),
            format!("PidFile {}", root.join("sshd.pid").display()),
            format!("AuthorizedKeysFile {}", root.join("authorized_keys").display()),
            "UsePAM no".to_owned(),
            "StrictModes no".to_owned(),
            "PermitRootLogin prohibit-password".to_owned(),
            "PasswordAuthentication no".to_owned(),
            "KbdInteractiveAuthentication no".to_owned(),
            "PubkeyAuthentication yes".to_owned(),
            "AllowTcpForwarding no".to_owned(),
            "X11Forwarding no".to_owned(),
            "PrintMotd no".to_owned(),
            "LogLevel VERBOSE".to_owned(),
        ]
        .join("\n");
        fs::write(root.join("sshd_config"), config + "\n").expect("sshd_config");
        let sshd = Command::new(find_program("sshd"))
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(root.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log_file(&root, "sshd.log"))
            .stderr(log_file(&root, "sshd.log"))
            .spawn()
            .expect("start sshd (scripts/setup.sh installs openssh-server)");
        let mut server = SshGitServer { dir, port, children: vec![sshd] };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(&mut server.children, || TcpStream::connect(addr).is_ok(), &root.join("sshd.log"));
        server
    }

    /// Serves the bare repository `bare` as `name`; returns its `ssh://` url.
    pub fn serve(&self, name: &str, bare: &Path) -> String {
        let link = self.dir.path().join("repos").join(name);
        std::os::unix::fs::symlink(bare, &link).expect("link the repository into the server");
        format!("ssh://root@127.0.0.1:{}{}", self.port, link.display())
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The private key sshd accepts (OpenSSH format).
    pub fn client_key(&self) -> Vec<u8> {
        fs::read(self.dir.path().join("client_key")).expect("client key")
    }

    /// The known_hosts line of the server's host key (`[127.0.0.1]:PORT TYPE KEY`).
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// sshd's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        kill_all(&mut self.children);
    }
}

/// A new ed25519 key pair without a passphrase at `path` and `path.pub`.
pub fn generate_key(path: &Path) {
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "eventide-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen (scripts/setup.sh installs openssh-client)");
    assert!(
        output.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A bare repository in `dir` with one commit on `main`; returns its path and the commit.
pub fn bare_repository(dir: &Path, name: &str) -> (PathBuf, String) {
    let work = dir.join(format!("{name}-work"));
    let bare = dir.join(format!("{name}.git"));
    fs::create_dir_all(&work).expect("work dir");
    fs::write(work.join("README"), "hello\n").expect("file");
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    git(&work, &["add", "--all"]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    git(dir, &["clone", "--quiet", "--bare", &work.to_string_lossy(), &bare.to_string_lossy()]);
    let head = git(&bare, &["rev-parse", "refs/heads/main"]);
    (bare, head)
}

/// Runs git in `dir`, isolated from the user's configuration; returns its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 it signed (`server.pem`,
/// `server.key`) in `root`.
fn make_certificates(root: &Path) {
    let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(new_key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    ca.extend(["-subj", "/CN=eventide test CA"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(root, &ca);
    let mut request = vec!["req"];
    request.extend(new_key);
    request.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(root, &request);
    let extensions = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
                      keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
    fs::write(root.join("server.ext"), extensions).expect("extensions");
    let mut sign = vec!["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"];
    sign.extend(["-CAcreateserial", "-out", "server.pem", "-days", "2"]);
    sign.extend(["-extfile", "server.ext"]);
    openssl(root, &sign);
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (scripts/setup.sh installs it)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_with_input(command: &mut Command, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "command failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// nginx in the foreground as one process (no workers under another user), every path
/// in `root`, TLS and basic auth in front of `git http-backend`.
fn nginx_config(root: &Path, port: u16, socket: &Path, backend: &Path) -> String {
    let root = root.display();
    let mut lines = vec![
        "daemon off;".to_owned(),
        "master_process off;".to_owned(),
        "worker_processes 1;".to_owned(),
        format!("pid {root}/nginx.pid;"),
        format!("error_log {root}/error.log info;"),
        "events { worker_connections 64; }".to_owned(),
        "http {".to_owned(),
        format!("access_log {root}/access.log;"),
    ];
    for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        lines.push(format!("{kind}_temp_path {root}/tmp/{kind};"));
    }
    lines.extend([
        "server {".to_owned(),
        format!("listen 127.0.0.1:{port} ssl;"),
        format!("ssl_certificate {root}/server.pem;"),
        format!("ssl_certificate_key {root}/server.key;"),
        "location / {".to_owned(),
        "auth_basic \"git\";".to_owned(),
        format!("auth_basic_user_file {root}/htpasswd;"),
        "client_max_body_size 0;".to_owned(),
        format!("fastcgi_pass unix:{};", socket.display()),
        format!("fastcgi_param SCRIPT_FILENAME {};", backend.display()),
        format!("fastcgi_param GIT_PROJECT_ROOT {root}/repos;"),
        "fastcgi_param GIT_HTTP_EXPORT_ALL \"\";".to_owned(),
    ]);
    for (name, value) in [
        ("PATH_INFO", "uri"),
        ("REMOTE_USER", "remote_user"),
        ("QUERY_STRING", "query_string"),
        ("REQUEST_METHOD", "request_method"),
        ("CONTENT_TYPE", "content_type"),
        ("CONTENT_LENGTH", "content_length"),
        ("GIT_PROTOCOL", "http_git_protocol"),
    ] {
        lines.push(format!("fastcgi_param {name} ${value};"));
    }
    lines.extend(["}".to_owned(), "}".to_owned(), "}".to_owned()]);
    lines.join("\n") + "\n"
}

/// Where git keeps its helper programs (`git --exec-path`).
fn git_exec_path() -> PathBuf {
    let output = Command::new("git").arg("--exec-path").output().expect("git runs");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// `name` on PATH or in the sbin directories (not always on root's PATH).
fn find_program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path.split(':').map(PathBuf::from);
    let fallback = ["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from);
    dirs.chain(fallback)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found: run scripts/setup.sh to install it"))
}

fn log_file(root: &Path, name: &str) -> fs::File {
    fs::OpenOptions::new().create(true).append(true).open(root.join(name)).expect("log file")
}

/// A free loopback TCP port (the listener closes before the server binds it).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Polls `ready` until it holds; fails (showing the `log` file) if a child exits first
/// or the start deadline passes.
fn wait_for(children: &mut [Child], ready: impl Fn() -> bool, log: &Path) {
    let until = Instant::now() + START_DEADLINE;
    while !ready() {
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read_to_string(log).unwrap_or_default();
                panic!("a git server process exited ({status}) before it was ready:\n{text}");
            }
        }
        if Instant::now() >= until {
            let text = fs::read_to_string(log).unwrap_or_default();
            panic!("a git server was not ready within {START_DEADLINE:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_all(children: &mut [Child]) {
    for child in children.iter_mut().rev() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// 64 random bits in hex, from the kernel.
fn random_hex() -> String {
    use std::io::Read;
    let mut buffer = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buffer))
        .expect("urandom");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}
