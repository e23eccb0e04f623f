/* The embedded default text of `flxemu ppl`: a few paragraphs written for
 * this project (no third-party text), long enough for one 2048-token window
 * and two 512-token chunks under the byte-level vocabulary of synthetic
 * models. */
#include "flx_ppl.h"

#include <string.h>

static const char default_text[] =
    "The harbour town woke slowly on winter mornings. Before the first ferry left, the baker on the "
    "corner had already pulled three trays of bread from the oven, and the smell drifted down to the "
    "quay where the fishermen were mending their nets. Nobody hurried. The tide would come in when it "
    "wanted to, and the boats would leave when the tide allowed them.\n\n"
    "Mara kept the lighthouse at the end of the long stone pier. Every evening she climbed the one "
    "hundred and twelve steps, wound the clockwork that turned the lens, and wrote a line in the log: "
    "the time, the wind, the state of the sea, and the ships she had seen. Most entries were short. "
    "\"Calm, light rain, two trawlers heading north.\" Some were longer, written on nights when the "
    "storm pressed against the glass and the whole tower hummed like a struck bell.\n\n"
    "In the spring a young engineer arrived with crates of equipment. The council wanted to replace "
    "the clockwork with an electric motor and a small computer that would switch the lamp on at "
    "dusk and off at dawn. Mara showed him the brass gears, the oil cans, the spare mantles kept in "
    "a wooden box, and the logbooks that went back more than sixty years. He listened carefully and "
    "took notes. Then he asked a question nobody had asked her before: which nights had been the "
    "hardest, and why?\n\n"
    "They spent the evening reading old entries together. A keeper in 1931 had written about fog so "
    "thick that the beam seemed to stop a few metres from the window. Another had counted the "
    "seconds between flashes by hand for a whole night when a spring broke. The engineer realised "
    "that the new system would need to do more than switch a lamp. It would need to notice when "
    "something was wrong, and it would need to tell someone.\n\n"
    "By the end of the summer the motor was installed, but the clockwork stayed in place, cleaned "
    "and oiled, ready to take over if the power failed. The computer sent a short message to the "
    "harbour office every hour. Mara still climbed the steps each evening. She no longer had to "
    "wind anything, but she liked to look at the sea and write her line in the log, and the "
    "engineer had asked her to keep doing it. Numbers, he said, were useful, but a sentence from "
    "someone who had watched the water for thirty years was worth keeping too.\n\n"
    "Years later, when students came to study the records, they found two columns side by side: "
    "the machine's neat table of voltages and times, and Mara's handwriting beside it. The table "
    "told them what had happened. The handwriting told them what it had been like. Together they "
    "made a history of the harbour that neither could have written alone, and the students often "
    "said that the most surprising thing was how rarely the two columns disagreed.\n";

const char *flx_ppl_default_text(size_t *bytes)
{
    *bytes = sizeof default_text - 1;
    return default_text;
}
