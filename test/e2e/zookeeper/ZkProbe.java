import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * A ZooKeeper client driven by a test: the stock Java client (Debian's
 * zookeeper.jar), one connect string, sessions that write while servers die.
 * Run with the JDK's source launcher: java -cp ZOOKEEPER_JARS ZkProbe.java
 * CONNECT_STRING SESSION_TIMEOUT_MS.
 *
 * Commands on stdin, one per line; answers and events on stdout, one per line:
 *   open ID                  -> "session ID 0xSID" once connected
 *   create ID PATH DATA      -> "created PATH" (or "exists PATH")
 *   read ID PATH             -> "read PATH DATA"
 *   write ID PATH            -> "writing ID" after the first good write; then setData back to back
 *   report ID                -> "report ID sid=0x.. first=0x.. connected=B expired=B ok=N failed=N disconnects=N okSinceReconnect=N maxGapMs=N errors=..."
 *   quit                     -> closes every session, "bye"
 * Events: "state ID STATE 0xSID" on every change of a session's connection state.
 * A writer that loses its connection counts one failed write, waits until the
 * session is connected again and goes on (what a careful client does); maxGapMs
 * is the longest time between two good writes.
 */
public final class ZkProbe {
  private static final Map<String, Session> SESSIONS = new ConcurrentHashMap<>();
  private static String connect;
  private static int sessionTimeout;

  private ZkProbe() {}

  static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }

  static final class Session implements Watcher {
    final String id;
    volatile ZooKeeper zk;
    volatile long firstSid;
    volatile boolean connected;
    volatile boolean expired;
    volatile int disconnects;
    volatile long ok;
    volatile long failed;
    volatile long okSinceReconnect;
    volatile long maxGapMs;
    volatile boolean writing;
    final StringBuffer errors = new StringBuffer();
    private final Object monitor = new Object();

    Session(String id) {
      this.id = id;
    }

    @Override
    public void process(WatchedEvent event) {
      if (event.getType() != Event.EventType.None) return;
      Event.KeeperState state = event.getState();
      ZooKeeper current = zk;
      long sid = current == null ? 0 : current.getSessionId();
      synchronized (monitor) {
        if (state == Event.KeeperState.SyncConnected) {
          connected = true;
          okSinceReconnect = 0;
          if (firstSid == 0) firstSid = sid;
        } else {
          if (connected && state == Event.KeeperState.Disconnected) disconnects++;
          connected = false;
          if (state == Event.KeeperState.Expired) expired = true;
        }
        monitor.notifyAll();
      }
      say("state " + id + " " + state + " 0x" + Long.toHexString(sid));
    }

    boolean awaitConnected(long timeoutMs) throws InterruptedException {
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
      synchronized (monitor) {
        while (!connected && !expired) {
          long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
          if (left <= 0) return false;
          monitor.wait(left);
        }
        return connected;
      }
    }

    void writeLoop(String path) {
      byte[] data = "x".getBytes(StandardCharsets.UTF_8);
      long lastOk = 0;
      while (writing && !expired) {
        try {
          zk.setData(path, data, -1);
          long now = System.nanoTime();
          if (lastOk != 0) maxGapMs = Math.max(maxGapMs, TimeUnit.NANOSECONDS.toMillis(now - lastOk));
          if (ok == 0) say("writing " + id);
          lastOk = now;
          ok++;
          okSinceReconnect++;
          Thread.sleep(5);
        } catch (KeeperException.ConnectionLossException e) {
          failed++;
          try {
            awaitConnected(2L * sessionTimeout);
          } catch (InterruptedException interrupted) {
            return;
          }
        } catch (KeeperException e) {
          errors.append(e.code()).append(';');
          if (e.code() == KeeperException.Code.SESSIONEXPIRED) expired = true;
        } catch (InterruptedException e) {
          return;
        }
      }
    }

    String report() {
      return "report " + id + " sid=0x" + Long.toHexString(zk.getSessionId()) + " first=0x" + Long.toHexString(firstSid) + " connected=" + connected + " expired=" + expired
          + " ok=" + ok + " failed=" + failed + " disconnects=" + disconnects + " okSinceReconnect=" + okSinceReconnect + " maxGapMs=" + maxGapMs + " errors=" + errors;
    }
  }

  private static Session session(String id) {
    Session s = SESSIONS.get(id);
    if (s == null) throw new IllegalArgumentException("no session " + id);
    return s;
  }

  private static void handle(String[] words) throws Exception {
    switch (words[0]) {
      case "open": {
        Session s = new Session(words[1]);
        SESSIONS.put(s.id, s);
        s.zk = new ZooKeeper(connect, sessionTimeout, s);
        if (!s.awaitConnected(30_000)) throw new IllegalStateException("session " + s.id + " did not connect");
        say("session " + s.id + " 0x" + Long.toHexString(s.zk.getSessionId()));
        break;
      }
      case "create": {
        Session s = session(words[1]);
        try {
          s.zk.create(words[2], words[3].getBytes(StandardCharsets.UTF_8), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
          say("created " + words[2]);
        } catch (KeeperException.NodeExistsException e) {
          say("exists " + words[2]);
        }
        break;
      }
      case "read": {
        Session s = session(words[1]);
        say("read " + words[2] + " " + new String(s.zk.getData(words[2], false, null), StandardCharsets.UTF_8));
        break;
      }
      case "write": {
        Session s = session(words[1]);
        s.writing = true;
        Thread writer = new Thread(() -> s.writeLoop(words[2]), "writer-" + s.id);
        writer.setDaemon(true);
        writer.start();
        break;
      }
      case "report":
        say(session(words[1]).report());
        break;
      case "quit":
        for (Session s : SESSIONS.values()) {
          s.writing = false;
          s.zk.close(1000);
        }
        say("bye");
        System.exit(0);
        break;
      default:
        throw new IllegalArgumentException("unknown command " + words[0]);
    }
  }

  public static void main(String[] args) throws Exception {
    connect = args[0];
    sessionTimeout = Integer.parseInt(args[1]);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    say("ready");
    String line;
    while ((line = in.readLine()) != null) {
      String[] words = line.trim().split(" ", 4);
      if (words[0].isEmpty()) continue;
      try {
        handle(words);
      } catch (Exception e) {
        say("error " + line + ": " + e);
      }
    }
    System.exit(0);
  }
}
