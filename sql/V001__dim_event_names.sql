-- The event names the product emits, with the funnel stage each belongs to.
-- silver_events accepts only these names. To add one: a new V file inserting it, and the
-- accepted_values test of silver_events in models/events/models.yaml.
CREATE TABLE dim_event_names (
    event_name VARCHAR PRIMARY KEY,
    stage VARCHAR NOT NULL
);

INSERT INTO dim_event_names VALUES
    ('page_view', 'browse'),
    ('button_click', 'engage'),
    ('form_submit', 'engage'),
    ('video_play', 'engage'),
    ('video_pause', 'engage'),
    ('add_to_cart', 'convert'),
    ('remove_from_cart', 'convert'),
    ('checkout', 'convert'),
    ('purchase', 'convert'),
    ('sign_up', 'account'),
    ('sign_in', 'account'),
    ('sign_out', 'account'),
    ('search', 'browse'),
    ('filter_apply', 'browse'),
    ('share', 'engage');
