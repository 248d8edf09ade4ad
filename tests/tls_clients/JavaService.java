// A service whose upstream client is Java's java.net.http.HttpClient (JSSE), default trust:
// the JVM's cacerts, or the store -Djavax.net.ssl.trustStore names (JAVA_TOOL_OPTIONS).
// Run from source: java JavaService.java. CALL_EXTRA's members are appended to the JSON
// body sent upstream (a later duplicate key wins when it is read).
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

public class JavaService {
    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    static void send(HttpExchange exchange, int status, byte[] data, Integer upstream) throws java.io.IOException {
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        if (upstream != null) exchange.getResponseHeaders().set("X-Upstream-Status", upstream.toString());
        exchange.sendResponseHeaders(status, data.length);
        exchange.getResponseBody().write(data);
        exchange.close();
    }

    static String outgoing(String body) {
        String extra = System.getenv("CALL_EXTRA");
        if (extra == null || extra.isEmpty()) return body;
        return body.substring(0, body.lastIndexOf('}')) + ", " + extra.trim().substring(1);
    }

    static String quoted(String text) {
        return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
    }

    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(System.getenv("PORT"))), 16);
        server.createContext("/health", e -> send(e, 200, "{\"ok\": true}".getBytes(), null));
        server.createContext("/call", e -> {
            String body = new String(e.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            String url = e.getRequestHeaders().getFirst("X-Upstream-Url");
            if (url == null) url = System.getenv("UPSTREAM_URL");
            try {
                HttpRequest request = HttpRequest.newBuilder(URI.create(url))
                    .timeout(Duration.ofSeconds(10))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(outgoing(body)))
                    .build();
                HttpResponse<byte[]> response = CLIENT.send(request, HttpResponse.BodyHandlers.ofByteArray());
                send(e, 200, response.body(), response.statusCode());
            } catch (Exception error) {
                send(e, 502, ("{\"error\": " + quoted(error.toString()) + "}").getBytes(StandardCharsets.UTF_8), null);
            }
        });
        server.start();
    }
}
