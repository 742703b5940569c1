// Parse a zoo.cfg with ZooKeeper's own QuorumPeerConfig, as zkServer.sh would at start, and
// print what it understood. Exit 0 when the file is a valid ensemble configuration, 1 if not.
// Run as a single-file program: java -cp <zookeeper jars> ParseZkConfig.java zoo.cfg
import java.util.Map;
import org.apache.zookeeper.server.quorum.QuorumPeer.QuorumServer;
import org.apache.zookeeper.server.quorum.QuorumPeerConfig;

public class ParseZkConfig {
    public static void main(String[] args) {
        QuorumPeerConfig config = new QuorumPeerConfig();
        try {
            config.parse(args[0]);
        } catch (Exception e) {
            System.out.println("invalid: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                System.out.println("  caused by: " + c);
            }
            System.exit(1);
        }
        Map<Long, QuorumServer> servers = config.getServers();
        System.out.println("myid=" + config.getServerId());
        System.out.println("distributed=" + config.isDistributed());
        System.out.println("tickTime=" + config.getTickTime());
        System.out.println("minSessionTimeout=" + config.getMinSessionTimeout());
        System.out.println("maxSessionTimeout=" + config.getMaxSessionTimeout());
        System.out.println("clientPort=" + config.getClientPortAddress().getPort());
        System.out.println("dataDir=" + config.getDataDir());
        for (Map.Entry<Long, QuorumServer> e : servers.entrySet()) {
            QuorumServer s = e.getValue();
            System.out.println("server." + e.getKey() + "=" + s.hostname + ":"
                + s.addr.getReachableOrOne().getPort() + ":"
                + s.electionAddr.getReachableOrOne().getPort());
        }
    }
}
