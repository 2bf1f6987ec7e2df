// Drives a real slmnode with the real @anthropic-ai/sdk; prints one JSON object of what it saw.
// Usage: node anthropic_sdk.mjs BASE_URL MODEL   (run by tests/integration/test_anthropic_api.py)
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, model] = process.argv.slice(2);
const client = new Anthropic({ baseURL, apiKey: "not-needed", maxRetries: 0 });
const messages = [{ role: "user", content: "Count: 1, 2, 3," }];
const weather = {
  name: "get_weather",
  description: "Weather forecast for a city",
  input_schema: {
    type: "object",
    properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
    required: ["city", "unit"],
  },
};

const out = {};
out.create = await client.messages.create({ model, max_tokens: 8, temperature: 0, messages });

const stream = client.messages.stream({ model, max_tokens: 8, temperature: 0, messages });
out.streamEvents = [];
out.streamText = "";
stream.on("streamEvent", (event) => out.streamEvents.push(event.type));
stream.on("text", (delta) => { out.streamText += delta; });
out.streamFinal = await stream.finalMessage();

out.tool = await client.messages.create({
  model, max_tokens: 64, temperature: 0, tools: [weather], tool_choice: { type: "tool", name: "get_weather" },
  messages: [{ role: "user", content: "What is the weather in Paris?" }],
});
out.toolSchema = weather.input_schema;
out.count = await client.messages.countTokens({ model, messages });

try {
  await client.messages.create({ model: "no-such-model", max_tokens: 8, messages });
  out.error = null;
} catch (err) {
  out.error = { name: err.constructor.name, status: err.status, body: err.error };
}
console.log(JSON.stringify(out));
