-- table: judgments
-- description: one graded label per impression: 3 purchase, 2 add-to-cart, 1 click, 0 examined
--   and skipped. Examination rule: in a request with at least one click, positions up to the
--   deepest clicked position are examined; positions below it, and every position of a request
--   without clicks, are unexamined (examined = false) and get no label (NULL). Position kept.
-- inputs: impressions, clicks, carts, purchases
-- rule rows: 1 .. 1000000000
-- rule unique: request_id, item_id
-- rule unique: request_id, position
-- rule not_null: request_id, query_id, item_id, position, day, examined
-- rule range: label 0 .. 3
-- rule range: position 1 .. 1000
WITH events AS (
    SELECT
        i.request_id,
        i.query_id,
        i.query_text,
        i.user_id,
        i.item_id,
        i.position,
        CAST(FLOOR(i.event_time / 86400) AS BIGINT) AS day,
        CASE WHEN c.request_id IS NULL THEN 0 ELSE 1 END AS clicked,
        CASE WHEN a.request_id IS NULL THEN 0 ELSE 1 END AS carted,
        CASE WHEN p.request_id IS NULL THEN 0 ELSE 1 END AS purchased
    FROM impressions i
    LEFT JOIN clicks c ON c.request_id = i.request_id AND c.item_id = i.item_id
    LEFT JOIN carts a ON a.request_id = i.request_id AND a.item_id = i.item_id
    LEFT JOIN purchases p ON p.request_id = i.request_id AND p.item_id = i.item_id
),
depth AS (
    SELECT
        *,
        MAX(CASE WHEN clicked = 1 THEN position END) OVER (PARTITION BY request_id) AS last_click
    FROM events
)
SELECT
    request_id,
    query_id,
    query_text,
    user_id,
    item_id,
    position,
    day,
    clicked,
    carted,
    purchased,
    COALESCE(position <= last_click, FALSE) AS examined,
    CASE
        WHEN last_click IS NULL OR position > last_click THEN NULL
        WHEN purchased = 1 THEN 3
        WHEN carted = 1 THEN 2
        WHEN clicked = 1 THEN 1
        ELSE 0
    END AS label
FROM depth
